// Channel operators' consent to plumbing (approvals.ts), with its I/O stood in: who is asked, which
// answers count, and what each side is told. The e2e (irc-approval.test.ts) runs it against ergo.
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../packages/core/src/util/log.js';
import { OpApprovals, verdictOf, type LinkRequest, type StoredLinkRequest } from '../../../packages/irc/src/approvals.js';

const req: LinkRequest = { server: 'libera', channel: '#Chan', chat: 'libera/#chan', roomId: '!r:hs', userId: '@u:hs', roomLabel: '#room:hs' };

/** The IRC store's link requests, in memory. */
class MemoryStore {
  readonly rows = new Map<string, StoredLinkRequest>();
  linkRequests(): StoredLinkRequest[] { return [...this.rows.values()]; }
  putLinkRequest(r: StoredLinkRequest): void { this.rows.set(`${r.server} ${r.chat} ${r.roomId}`, r); }
  dropLinkRequest(server: string, chat: string, roomId: string): void { this.rows.delete(`${server} ${chat} ${roomId}`); }
}

function setup(operators = ['op1', 'op2'], store = new MemoryStore(), now?: () => number) {
  const told: string[] = [], notices: string[] = [], linked: string[] = [], ended: string[] = [];
  const ops = new Set(operators);
  /** Who is in a channel is known (its NAMES came) once this resolves; by default, at once. */
  const names = { known: Promise.resolve(), asked: [] as string[] };
  const approvals = new OpApprovals({
    store, ...(now ? { now } : {}), ended: (r) => { ended.push(r.roomId); },
    log: silentLogger,
    tell: async (_r, text) => { told.push(text); },
    notice: (_s, nick, text) => { notices.push(`${nick}: ${text}`); },
    isOperator: (_s, _c, nick) => ops.has(nick.toLowerCase()),
    known: (_s, channel) => { names.asked.push(channel); return names.known; },
    link: async (r, op) => { linked.push(`${r.roomId} by ${op}`); return 'linked'; },
  });
  return { approvals, told, notices, linked, ops, store, ended, names };
}

describe('verdictOf', () => {
  it.each<[string, 'yes' | 'no' | undefined]>([
    ['yes', 'yes'], ['Yes, welcome!', 'yes'], ['ok', 'yes'], ['approve', 'yes'], ['y', 'yes'],
    ['no', 'no'], ['No thanks', 'no'], ['deny', 'no'], ['refused', 'no'],
    ['maybe', undefined], ['yesterday', undefined], ['nope', undefined], ['', undefined], ['hello yes', undefined],
    ['ok, who is that?', undefined], ['y? which room', undefined], // a question is no answer
  ])('%j → %s', (text, verdict) => expect(verdictOf(text)).toBe(verdict));

});

describe('OpApprovals', () => {
  it('asks each operator; the first operator\'s yes links once, and later answers find nothing waiting', async () => {
    const { approvals, told, notices, linked } = setup();
    expect(approvals.ask(req, ['op1', 'op2'], 60)).toBe('Asked the operators of #Chan (op1, op2) by IRC notice.');
    expect(notices).toEqual([
      'op1: @u:hs asks to bridge #Chan to the Matrix room #room:hs. As an operator of #Chan, answer me "yes" to allow it or "no" to refuse, within 1 minute.',
      'op2: @u:hs asks to bridge #Chan to the Matrix room #room:hs. As an operator of #Chan, answer me "yes" to allow it or "no" to refuse, within 1 minute.',
    ]);
    expect(await approvals.answered('libera', 'someone', 'yes')).toBe(false); // not asked
    expect(await approvals.answered('libera', 'OP2', 'what is this?')).toBe(false); // no verdict
    expect(await approvals.answered('oftc', 'op2', 'yes')).toBe(false); // another server
    expect(await approvals.answered('libera', 'OP2', 'yes')).toBe(true);
    expect(linked).toEqual(['!r:hs by OP2']);
    expect(told).toEqual(['linked']);
    expect(await approvals.answered('libera', 'op1', 'no')).toBe(false);
    approvals.stop();
  });

  it('a no refuses; an operator no longer one does not count; asking again replaces the request', async () => {
    const { approvals, told, notices, linked, ops, ended } = setup();
    approvals.ask(req, ['op1', 'op2'], 60);
    approvals.ask(req, ['op1', 'op2'], 60); // the same room and channel: one request
    ops.delete('op1');
    expect(await approvals.answered('libera', 'op1', 'yes')).toBe(true);
    expect(notices.at(-1)).toBe('op1: You are no longer an operator of #Chan, so your answer does not count.');
    expect(linked).toEqual([]);
    expect(await approvals.answered('libera', 'op2', 'no')).toBe(true);
    expect(told).toEqual(['op2, an operator of #Chan, refused to link it to this room.']);
    expect(ended).toEqual(['!r:hs']);
    expect(await approvals.answered('libera', 'op2', 'yes')).toBe(false); // nothing left waiting
    expect(linked).toEqual([]);
  });

  it('keeps waiting requests in the store: after a restart an operator\'s answer still counts; one whose time ran out ends', async () => {
    const store = new MemoryStore();
    let t = 1_000_000;
    const before = setup(['op1'], store, () => t);
    before.approvals.ask(req, ['OP1'], 60);
    before.approvals.ask({ ...req, roomId: '!late:hs' }, ['op1'], 10);
    expect(store.rows.size).toBe(2);
    before.approvals.stop(); // the bridge stops: the requests stay stored
    expect(store.rows.size).toBe(2);
    t += 30_000; // 30 s later: the first has 30 s left, the second ran out
    const after = setup(['op1'], store, () => t);
    expect(after.approvals.restore().map((r) => r.roomId)).toEqual(['!r:hs']); // still waiting
    expect(after.told).toEqual(['No operator of #Chan answered within 10 seconds, so this room is not linked to it.']);
    expect(after.ended).toEqual(['!late:hs']);
    expect(store.rows.size).toBe(1);
    expect(await after.approvals.answered('libera', 'Op1', 'yes')).toBe(true);
    expect(after.linked).toEqual(['!r:hs by Op1']);
    expect(store.rows.size).toBe(0);
    expect(after.notices).toEqual(['Op1: Done: #Chan is bridged to #room:hs.']); // not asked again
  });

  it('takes the answer of an operator who was not asked: one who changed nick since, or was made an operator since', async () => {
    const { approvals, linked, ops } = setup(['op1']);
    approvals.ask(req, ['op1'], 60);
    approvals.ask({ ...req, roomId: '!second:hs' }, ['op1'], 60);
    ops.delete('op1'); ops.add('op1_away'); // op1 is op1_away now
    expect(await approvals.answered('libera', 'op1_away', 'yes')).toBe(true);
    expect(linked).toEqual(['!r:hs by op1_away']); // the oldest request first
    ops.add('newop');
    expect(await approvals.answered('libera', 'newop', 'yes')).toBe(true);
    expect(linked).toEqual(['!r:hs by op1_away', '!second:hs by newop']);
    approvals.stop();
  });

  it('after a restart, an answer waits until the channel\'s operators are known, then counts', async () => {
    const store = new MemoryStore();
    setup(['op1'], store).approvals.ask(req, ['op1'], 60);
    const after = setup([], store); // the bridge's connection not back in the channel: nobody seen as an operator
    after.approvals.restore();
    let names!: () => void;
    after.names.known = new Promise<void>((r) => { names = r; });
    const answer = after.approvals.answered('libera', 'op1', 'yes');
    await new Promise((r) => setTimeout(r, 20));
    expect(after.names.asked).toEqual(['#chan']);
    expect(after.notices).toEqual([]); // not told that the answer does not count
    after.ops.add('op1'); // the channel's NAMES is in
    names();
    expect(await answer).toBe(true);
    expect(after.linked).toEqual(['!r:hs by op1']);
    after.approvals.stop();
  });

  it('ends a request nobody answers, telling the requester', async () => {
    const { approvals, told, store } = setup();
    approvals.ask(req, ['op1'], 0.05);
    await new Promise((r) => setTimeout(r, 120));
    expect(told).toEqual(['No operator of #Chan answered within 0.05 seconds, so this room is not linked to it.']);
    expect(await approvals.answered('libera', 'op1', 'yes')).toBe(false);
    expect(store.rows.size).toBe(0);
  });
});
