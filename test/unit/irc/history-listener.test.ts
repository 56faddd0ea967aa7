// Fetching back what was missed, through the real IrcServer and its listener (server.ts, listen.ts,
// history.ts): lines fed to the listener's irc-framework client as the server sends them, through
// the listener's own line filter; CHATHISTORY requests recorded, reports to core recorded. No socket.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { NetworkContext } from '@trestle/core';
import { ircConfigSchema } from '../../../packages/irc/src/config.js';
import { IrcServer } from '../../../packages/irc/src/server.js';
import type { IrcStore } from '../../../packages/irc/src/store.js';

type Report = { t: string } & Record<string, unknown>;

/** The time of 2026-11-28 at h:m:s UTC, as a server-time tag and in ms. */
const at = (h: number, m: number, s = 0): string => new Date(Date.UTC(2026, 10, 28, h, m, s)).toISOString();
const ms = (h: number, m: number, s = 0): number => Date.UTC(2026, 10, 28, h, m, s);

/**
 * A bridge with `history` on; `mark`: #rust's mark, if it has one; `pageMax`: the server's
 * CHATHISTORY=. The relay connection (`MatrixRelay`) stands for a Matrix user's own connection.
 * `hold`: message reports wait until `release()`.
 */
function bridge(opts: { mark?: number; pageMax?: number; hold?: boolean } = {}) {
  const cfg = ircConfigSchema.parse({ servers: { net: { host: 'irc.invalid', botNick: 'bridge', history: { enabled: true } } } }).servers['net']!;
  const log = { debug() {}, info() {}, warn() {}, error() {}, child: () => log };
  const kv = new Map<string, string>();
  if (opts.mark !== undefined) kv.set('history-marks:net', JSON.stringify({ '#rust': { t: opts.mark } }));
  const reports: Report[] = [];
  const waiting: (() => void)[] = [];
  const ctx = {
    log, kv,
    remote: new Proxy({}, {
      get: (_t, name: string) => async (x: Record<string, unknown>) => {
        reports.push({ t: name, ...x });
        if (name === 'message' && opts.hold) await new Promise<void>((resolve) => waiting.push(resolve));
      },
    }),
    matrix: { notice: async () => undefined, setPresence: async () => undefined },
    portals: { forChat: () => [], all: () => [], link() {}, unlink() {} },
    bridged: () => false,
  } as unknown as NetworkContext;
  const store = {
    ghostKey: (_s: string, nick: string) => nick.toLowerCase(), renameGhost: (_s: string, _o: string, n: string) => n.toLowerCase(),
    nickGone: () => false, storedNicks: () => [], user: () => ({}), setWantedNick() {}, setHeldNick() {},
  } as unknown as IrcStore;
  const server = new IrcServer('net', cfg, ctx, store);
  server.relayClient(); // a Matrix user's connection, nick MatrixRelay
  const sent: string[] = [];
  server.listener.raw = (line: string) => { sent.push(line); return true; };
  server.listener.client.network.cap.enabled.push('draft/chathistory', 'server-time', 'message-tags', 'batch');
  const conn = server.listener.client.connection as unknown as { addReadBuffer(line: string): void };
  const feed = (...lines: string[]): void => { for (const l of lines) conn.addReadBuffer(`${l}\r\n`); };
  feed(`:irc.test 005 bridge CHATHISTORY=${opts.pageMax ?? 100} :are supported by this server`);
  const messages = (): string[] => reports.filter((r) => r.t === 'message').map((r) => r['id'] as string);
  const mark = (): number | undefined => {
    vi.advanceTimersByTime(10_000); // the marks' flush
    const saved = kv.get('history-marks:net');
    return saved ? (JSON.parse(saved) as Record<string, { t: number }>)['#rust']?.t : undefined;
  };
  const release = (): void => { for (const w of waiting.splice(0)) w(); };
  return { server, feed, sent, reports, messages, mark, release, history: () => sent.filter((l) => l.startsWith('CHATHISTORY')) };
}

/** Let reports and the marks' moves behind them settle. */
const settle = async (): Promise<void> => { for (let i = 0; i < 20; i++) await Promise.resolve(); };

const listenerJoin = `@time=${at(3, 0)};msgid=join :bridge!u@h JOIN #rust`;

beforeEach(() => { vi.useFakeTimers(); vi.setSystemTime(ms(3, 0)); });
afterEach(() => { vi.useRealTimers(); });

describe('a history page with a Matrix user\'s own lines in it', () => {
  it('counts them: a full page asks for the next one (they are not bridged)', async () => {
    const b = bridge({ mark: ms(1, 0), pageMax: 3 });
    b.feed(listenerJoin);
    expect(b.history()).toEqual([`CHATHISTORY AFTER #rust timestamp=${at(1, 0)} 3`]);
    b.feed(
      `@time=${at(2, 0)} :irc.test BATCH +h1 chathistory #rust`,
      `@batch=h1;time=${at(2, 1)};msgid=m1 :alice!a@h PRIVMSG #rust :one`,
      `@batch=h1;time=${at(2, 2)};msgid=m2 :MatrixRelay!r@h PRIVMSG #rust :from Matrix`,
      `@batch=h1;time=${at(2, 3)};msgid=m3 :bob!b@h PRIVMSG #rust :three`,
      ':irc.test BATCH -h1',
    );
    expect(b.history()).toEqual([`CHATHISTORY AFTER #rust timestamp=${at(1, 0)} 3`, 'CHATHISTORY AFTER #rust msgid=m3 3']);
    expect(b.messages()).toEqual(['m1', 'm3']);
    b.server.stop();
  });
});

describe('a CHATHISTORY answer after its request was given up', () => {
  it('is not bridged as live messages', async () => {
    const b = bridge({ mark: ms(1, 0) });
    b.feed(listenerJoin);
    expect(b.history()).toHaveLength(1);
    vi.advanceTimersByTime(15_000); // the server did not answer in time
    b.feed(
      `@time=${at(3, 1)} :irc.test BATCH +h1 chathistory #rust`,
      `@batch=h1;time=${at(2, 1)};msgid=m1 :alice!a@h PRIVMSG #rust :old`,
      `@batch=h1;time=${at(2, 2)} :alice!a@h QUIT :gone`,
      `@batch=h1;time=${at(2, 3)};msgid=m2 :bob!b@h NICK :robert`,
      ':irc.test BATCH -h1',
    );
    await settle();
    // the rooms are told what is missing, and nothing of the late batch follows
    expect(b.reports).toEqual([{ t: 'notice', chat: 'net/#rust', text: expect.stringMatching(/^ℹ Not all that was said in #rust .*did not answer the bridge's request for it within 15 seconds/) }]);
    b.feed(`@time=${at(3, 2)};msgid=m9 :carol!c@h PRIVMSG #rust :live`);
    expect(b.messages()).toEqual(['m9']);
    b.server.stop();
  });
});

describe('the history mark', () => {
  it('moves past lines the listener reports nothing of: Matrix users\' own lines, joins, parts, quits', async () => {
    const b = bridge(); // no mark yet: it starts at the listener's join
    b.feed(listenerJoin);
    expect(b.mark()).toBe(ms(3, 0));
    b.feed(`@time=${at(3, 1)};msgid=o1 :MatrixRelay!r@h PRIVMSG #rust :from Matrix`);
    await settle();
    expect(b.mark()).toBe(ms(3, 1));
    b.feed(`@time=${at(3, 2)};msgid=j1 :carol!c@h JOIN #rust`);
    await settle();
    expect(b.mark()).toBe(ms(3, 2));
    b.feed(`@time=${at(3, 3)};msgid=q1 :carol!c@h QUIT :bye`);
    await settle();
    expect(b.mark()).toBe(ms(3, 3));
    b.feed(`@time=${at(3, 4)};msgid=p1 :dave!d@h JOIN #rust`, `@time=${at(3, 5)};msgid=p2 :dave!d@h PART #rust`);
    await settle();
    expect(b.mark()).toBe(ms(3, 5));
    b.server.stop();
  });

  it('never passes a message whose report is not yet durable', async () => {
    const b = bridge({ hold: true });
    b.feed(listenerJoin);
    b.feed(`@time=${at(3, 1)};msgid=m1 :alice!a@h PRIVMSG #rust :not durable yet`, `@time=${at(3, 2)};msgid=j1 :carol!c@h JOIN #rust`);
    await settle();
    expect(b.mark()).toBe(ms(3, 0));
    b.release();
    await settle();
    expect(b.mark()).toBe(ms(3, 2));
    b.server.stop();
  });
});

describe('a deletion while the history is fetched', () => {
  it('waits behind the live messages held meanwhile, so it finds the one it deletes', async () => {
    const b = bridge({ mark: ms(1, 0) });
    b.feed(listenerJoin);
    expect(b.history()).toHaveLength(1);
    b.feed(
      `@time=${at(3, 1)};msgid=live1 :alice!a@h PRIVMSG #rust :oops, my password`,
      `@time=${at(3, 2)};msgid=r1 :alice!a@h REDACT #rust live1 :typo`,
    );
    await settle();
    expect(b.reports.filter((r) => r.t === 'message' || r.t === 'delete')).toEqual([]); // both wait for the history
    b.feed(`@time=${at(3, 3)} :irc.test BATCH +h1 chathistory #rust`, ':irc.test BATCH -h1');
    await settle();
    expect(b.reports.filter((r) => r.t === 'message' || r.t === 'delete').map((r) => [r.t, r['id'] ?? r['target']])).toEqual([['message', 'live1'], ['delete', 'live1']]);
    b.server.stop();
  });
});

describe('a leave while the history is fetched', () => {
  it('waits behind the live messages held meanwhile, so the ghost is not joined again by one of them', async () => {
    const b = bridge({ mark: ms(1, 0) });
    b.feed(listenerJoin, `@time=${at(3, 0, 1)} :alice!a@h JOIN #rust`); // joined after the listener: held too
    const members = (): string[] => b.reports.filter((r) => r.t === 'message' || r.t === 'membership')
      .map((r) => r.t === 'message' ? `said ${String(r['id'])}` : `${String(r['membership'])} ${String((r['user'] as { displayName?: string }).displayName)}`);
    const before = members().length;
    b.feed(
      `@time=${at(3, 1)};msgid=live1 :alice!a@h PRIVMSG #rust :bye all`,
      `@time=${at(3, 2)};msgid=p1 :alice!a@h PART #rust :gone`,
      `@time=${at(3, 3)};msgid=j2 :alice!a@h JOIN #rust`, // and back: the join must not overtake the leave
    );
    await settle();
    expect(members().slice(before)).toEqual([]); // all wait for the history
    b.feed(`@time=${at(3, 4)} :irc.test BATCH +h1 chathistory #rust`, ':irc.test BATCH -h1');
    await settle();
    expect(members().slice(before)).toEqual(['join alice', 'said live1', 'leave alice', 'join alice']);
    b.server.stop();
  });
});

describe('a line fetched from the history', () => {
  it('is never quoted in a reply (who joined since it was said is not known), though a live line may be', async () => {
    const b = bridge({ mark: ms(1, 0) });
    b.feed(listenerJoin);
    b.feed(
      `@time=${at(2, 0)} :irc.test BATCH +h1 chathistory #rust`,
      `@batch=h1;time=${at(2, 1)};msgid=old1 :alice!a@h PRIVMSG #rust :said while we were away`,
      ':irc.test BATCH -h1',
      `@time=${at(3, 1)};msgid=live1 :bob!b@h PRIVMSG #rust :said live`,
    );
    await settle();
    expect(b.messages()).toEqual(['old1', 'live1']);
    const rules = { shortWithinSeconds: 60, shortWithinLines: 0 };
    expect(b.server.recent.replyForm('#rust', ['old1'], ms(4, 0), rules)).toBe('short');
    expect(b.server.recent.replyForm('#rust', ['live1'], ms(4, 0), rules)).toBe('quote');
    b.server.stop();
  });
});
