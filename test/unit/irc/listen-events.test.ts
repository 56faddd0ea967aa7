// What the listener reports for channel events (listen.ts): raw IRC lines go through a real
// irc-framework client into ChannelEvents, with a fake server and context that record the reports.
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ChannelEvents, kickReason, partReason } from '../../../packages/irc/src/listen.js';
import { ircLower, ircUser } from '../../../packages/irc/src/ids.js';
import { RecentLines } from '../../../packages/irc/src/replies.js';
import type { IrcServer } from '../../../packages/irc/src/server.js';
import type { IrcStore } from '../../../packages/irc/src/store.js';
import type { NetworkContext } from '@trestle/core';

const IRC = createRequire(new URL('../../../packages/irc/package.json', import.meta.url))('irc-framework');

type Report = { t: string } & Record<string, unknown>;

/** A listener named `bridge` on server `net`; `portals`: chat → room ids; `expectKick`: [channel, nick] kicks sent for Matrix. */
function listener(opts: { portals?: Record<string, string[]>; expectKick?: [string, string][] } = {}) {
  const client = new IRC.Client();
  const conn = Object.assign(new EventEmitter(), { client, nick: 'bridge', raw: () => true });
  const reports: Report[] = [];
  const expected = new Set((opts.expectKick ?? []).map(([c, n]) => `${ircLower(c)}\0${ircLower(n)}`));
  const server = {
    key: 'net', stopped: false, listener: conn,
    cfg: { modePowers: { q: 100, a: 75, o: 50, h: 25, v: 1 }, history: { enabled: false }, presence: false, mappings: {} },
    isOwnNick: (n: string) => ircLower(n) === ircLower(conn.nick),
    isLeftover: () => false, leftoverGone: () => false, departed: () => undefined,
    senderFor: (n: string) => ({ id: ircUser('net', ircLower(n)), displayName: n }),
    recent: new RecentLines(), noteAccount: () => undefined, localId: () => 'x',
    takeExpectedKick: (c: string, n: string) => expected.delete(`${ircLower(c)}\0${ircLower(n)}`),
    ghostName: (n: string) => n, content: (t: string) => ({ body: t }),
  } as unknown as IrcServer;
  const rec = (t: string) => async (x: Record<string, unknown>): Promise<void> => { reports.push({ t, ...x }); };
  const log = { debug() {}, info() {}, warn() {}, error() {}, child: () => log };
  const ctx = {
    log, kv: new Map(),
    remote: Object.fromEntries(['membership', 'memberList', 'powerLevels', 'roomSettings', 'message', 'profile', 'chatInfo', 'notice'].map((t) => [t, rec(t)])),
    portals: { forChat: (c: string) => (opts.portals?.[c] ?? []).map((roomId) => ({ roomId, kind: 'plumbed' })), link() {}, unlink() {}, moveChat() {} },
    bridged: () => false,
  } as unknown as NetworkContext;
  const events = new ChannelEvents(server, ctx, { renameGhost: (_s: string, _o: string, n: string) => ircLower(n), nickGone: () => false } as unknown as IrcStore);
  events.wire();
  const feed = (...lines: string[]): void => { for (const l of lines) client.connection.addReadBuffer(`${l}\r\n`); };
  const of = (t: string): Report[] => reports.filter((r) => r.t === t);
  return { events, feed, reports, of, conn };
}

/** The listener joins a channel with these members (NAMES, prefixes and all). */
const joined = (channel: string, names: string): string[] =>
  [`:bridge!u@h JOIN ${channel}`, `:irc 353 bridge = ${channel} :bridge ${names}`, `:irc 366 bridge ${channel} :End of /NAMES list.`];

const SOLANUM = [
  ':irc.libera.chat 002 bridge :Your host is tantalum.libera.chat[1.2.3.4/6697], running version solanum-1.0-dev',
  ':irc.libera.chat 005 bridge CHANTYPES=# CHANMODES=eIbq,k,flj,CFLMPQRSTcgimnprstuz PREFIX=(ov)@+ CASEMAPPING=rfc1459 :are supported by this server',
];
const ERGO = [
  ':ergo.test 002 bridge :Your host is ergo.test, running version ergo-2.14.0',
  ':ergo.test 005 bridge CHANMODES=Ibe,k,fl,CEMRUimnstu PREFIX=(qaohv)~&@%+ CASEMAPPING=ascii :are supported by this server',
];

afterEach(() => { vi.useRealTimers(); });

describe('mode letters mean what the server says they mean', () => {
  it('solanum +q is a quiet (a list mode): no rank for the mask; +o is still op', () => {
    const h = listener();
    h.feed(...SOLANUM, ...joined('#chan', '@op alice'));
    h.reports.length = 0;
    h.feed(':op!o@h MODE #chan +q *!*@spam.example');
    expect(h.of('powerLevels')).toEqual([]);
    h.feed(':op!o@h MODE #chan +o alice');
    expect(h.of('powerLevels')).toEqual([{ t: 'powerLevels', chat: 'net/#chan', users: { 'net/alice': 50 } }]);
  });

  it('ergo +q is founder', () => {
    const h = listener();
    h.feed(...ERGO, ...joined('#chan', '@op alice'));
    h.reports.length = 0;
    h.feed(':op!o@h MODE #chan +q alice');
    expect(h.of('powerLevels')).toEqual([{ t: 'powerLevels', chat: 'net/#chan', users: { 'net/alice': 100 } }]);
  });

  it.each<[string, string[], boolean]>([
    ['solanum +u (unfiltered): NAMES is everyone, those gone leave', SOLANUM, true],
    ['ergo +u (auditorium): NAMES is not everyone, nobody is taken out', ERGO, false],
  ])('%s', (_name, isupport, pruned) => {
    const h = listener();
    h.feed(...isupport, ...joined('#chan', '@op'), ':irc 324 bridge #chan +ntu');
    expect(h.of('memberList').length > 0).toBe(pruned);
  });
});

describe('PART and KICK reasons: only when the line has one', () => {
  it.each<[string, { channel: string; message?: string }, string | undefined]>([
    ['a reasonless PART (the channel as last parameter)', { channel: '#a', message: '#a' }, undefined],
    ['a PART with a reason', { channel: '#a', message: 'see you' }, 'see you'],
    ['an empty reason', { channel: '#a', message: '' }, undefined],
  ])('%s', (_name, e, reason) => { expect(partReason(e)).toBe(reason); });

  it.each<[string, { kicked: string; message?: string }, string | undefined]>([
    ['a reasonless KICK (the nick as last parameter)', { kicked: 'bob', message: 'bob' }, undefined],
    ['a KICK with a reason', { kicked: 'bob', message: 'spam' }, 'spam'],
  ])('%s', (_name, e, reason) => { expect(kickReason(e)).toBe(reason); });

  it('as irc-framework hands the lines over', () => {
    const h = listener();
    h.feed(...joined('#a', 'alice carol'), ...joined('#b', 'bob dave'));
    h.reports.length = 0;
    h.feed(':alice!u@h PART #a', ':carol!u@h PART #a :lunch', ':op!u@h KICK #b bob', ':op!u@h KICK #b dave :flood');
    expect(h.of('membership').map((r) => r['reason'])).toEqual([undefined, 'lunch', undefined, 'flood']);
  });
});

describe('the listener kicked from a channel', () => {
  it('forgets who is in it; those also in another channel stay known', () => {
    const h = listener({ portals: { 'net/#chan': ['!a'] } });
    h.feed(...joined('#chan', '@op alice bob'), ...joined('#other', 'bob'));
    h.feed(':op!o@h KICK #chan bridge :bye');
    expect(h.events.inChannel('alice', '#chan')).toBe(false);
    expect(h.events.knowsNick('alice')).toBe(false);
    expect(h.events.inChannel('bob', '#chan')).toBe(false);
    expect(h.events.inChannel('bob', '#other')).toBe(true);
    expect(h.of('membership').filter((r) => r['membership'] !== 'join')).toEqual([]); // nobody else left
  });
});

describe('a kick done for a Matrix kick or ban', () => {
  it('is reported as a leave (other rooms of the channel lose the ghost; the kicking room has nothing to undo)', () => {
    const h = listener({ portals: { 'net/#chan': ['!a', '!b'] }, expectKick: [['#chan', 'troll']] });
    h.feed(...joined('#chan', '@op troll'));
    h.reports.length = 0;
    h.feed(':op!o@h KICK #chan troll :Kicked from Matrix');
    expect(h.reports).toEqual([{ t: 'membership', chat: 'net/#chan', user: { id: 'net/troll', displayName: 'troll' }, membership: 'leave', reason: 'Kicked by op: Kicked from Matrix' }]);
  });

  it('an IRC kick is still a kick, by whom', () => {
    const h = listener({ portals: { 'net/#chan': ['!a'] } });
    h.feed(...joined('#chan', '@op troll'));
    h.reports.length = 0;
    h.feed(':op!o@h KICK #chan troll :go');
    expect(h.reports).toEqual([{ t: 'membership', chat: 'net/#chan', user: { id: 'net/troll', displayName: 'troll' }, membership: 'kick', by: { id: 'net/op', displayName: 'op' }, reason: 'go' }]);
  });
});

describe('a netsplit quit, the nick back in only some of its channels', () => {
  it('the channels it returns to keep the ghost; the others see it leave when the hold expires', () => {
    vi.useFakeTimers();
    const h = listener();
    h.feed(...joined('#a', 'alice'), ...joined('#b', 'alice'));
    h.reports.length = 0;
    h.feed(':alice!u@h QUIT :*.net *.split', ':alice!u@h JOIN #a');
    expect(h.reports).toEqual([]);
    expect(h.events.heldQuits).toBe(1);
    vi.advanceTimersByTime(61_000);
    expect(h.reports).toEqual([{ t: 'membership', chat: 'net/#b', user: { id: 'net/alice', displayName: 'alice' }, membership: 'leave', reason: '*.net *.split' }]);
    expect(h.events.heldQuits).toBe(0);
  });

  it('back in all of them: nothing at all', () => {
    vi.useFakeTimers();
    const h = listener();
    h.feed(...joined('#a', 'alice'), ...joined('#b', 'alice'));
    h.reports.length = 0;
    h.feed(':alice!u@h QUIT :*.net *.split', ':alice!u@h JOIN #b', ':alice!u@h JOIN #a');
    expect(h.events.heldQuits).toBe(0);
    vi.advanceTimersByTime(61_000);
    expect(h.reports).toEqual([]);
  });

  it('joining a channel it was not in before is a join there', () => {
    const h = listener();
    h.feed(...joined('#a', 'alice'), ...joined('#c', ''));
    h.reports.length = 0;
    h.feed(':alice!u@h QUIT :*.net *.split', ':alice!u@h JOIN #c');
    expect(h.reports).toEqual([{ t: 'membership', chat: 'net/#c', user: { id: 'net/alice', displayName: 'alice' }, membership: 'join' }]);
    expect(h.events.heldQuits).toBe(1);
  });
});

describe('ranks of those who come back', () => {
  const levels = (h: ReturnType<typeof listener>): Record<string, unknown>[] => h.of('powerLevels').map((r) => r['users'] as Record<string, unknown>);

  it('the first NAMES after joining reports everyone listed: a rank lost while the bridge was away comes off the ghost', () => {
    const h = listener();
    h.feed(...joined('#chan', '@op alice'));
    expect(levels(h)).toEqual([{ 'net/op': 50, 'net/alice': 0 }]);
  });

  it('an operator who parts and comes back without op: the ghost\'s level follows after a few seconds', () => {
    vi.useFakeTimers();
    const h = listener();
    h.feed(...joined('#chan', '@alice bob'));
    h.reports.length = 0;
    h.feed(':alice!u@h PART #chan', ':alice!u@h JOIN #chan');
    vi.advanceTimersByTime(2_000);
    expect(levels(h)).toEqual([]);
    vi.advanceTimersByTime(1_500);
    expect(levels(h)).toEqual([{ 'net/alice': 0 }]);
    // someone who never had a rank: nothing to put right
    h.reports.length = 0;
    h.feed(':bob!u@h PART #chan', ':bob!u@h JOIN #chan');
    vi.advanceTimersByTime(5_000);
    expect(levels(h)).toEqual([]);
  });

  it('opped again within the wait (services, a netjoin): never shown without the rank in between', () => {
    vi.useFakeTimers();
    const h = listener();
    h.feed(...joined('#chan', '@alice'));
    h.reports.length = 0;
    h.feed(':alice!u@h QUIT :Ping timeout', ':alice!u@h JOIN #chan', ':ChanServ!s@services MODE #chan +o alice');
    vi.advanceTimersByTime(5_000);
    expect(levels(h).every((u) => u['net/alice'] === 50)).toBe(true);
    expect(levels(h).length).toBeGreaterThan(0);
  });
});

describe('a channel renamed while something waits on it', () => {
  it('a netsplit quit held there leaves the rooms, which follow the new name; its NAMES is still known', async () => {
    vi.useFakeTimers();
    const h = listener({ portals: { 'net/#old': ['!r'] } });
    h.feed(...joined('#old', 'alice'));
    h.feed(':alice!u@h QUIT :*.net *.split');
    h.conn.emit('renamed', { from: '#old', to: '#new' });
    h.reports.length = 0;
    vi.advanceTimersByTime(61_000);
    expect(h.of('membership')).toEqual([{ t: 'membership', chat: 'net/#new', user: { id: 'net/alice', displayName: 'alice' }, membership: 'leave', reason: '*.net *.split' }]);
    // who is in it was had before the rename: nothing to wait for under the new name
    let named = false;
    void h.events.named('#new', 5_000).then(() => { named = true; });
    await vi.advanceTimersByTimeAsync(0);
    expect(named).toBe(true);
  });
});


describe('a chathistory batch that reaches irc-framework (HistoryBatches should have taken it)', () => {
  it.each(['chathistory', 'draft/chathistory'])('is old: nothing of a %s batch is reported as live', (type) => {
    const h = listener();
    h.feed(...ERGO, ...joined('#chan', 'alice bob carol'));
    h.reports.length = 0;
    h.feed(
      `:irc BATCH +h1 ${type} #chan`,
      '@batch=h1;time=2026-11-28T02:00:01.000Z;msgid=m1 :alice!a@h PRIVMSG #chan :old',
      '@batch=h1;time=2026-11-28T02:00:02.000Z :alice!a@h QUIT :gone',
      '@batch=h1;time=2026-11-28T02:00:03.000Z :bob!b@h PART #chan :bye',
      '@batch=h1;time=2026-11-28T02:00:04.000Z :carol!c@h NICK :caroline',
      '@batch=h1;time=2026-11-28T02:00:05.000Z :op!o@h TOPIC #chan :an old topic',
      '@batch=h1;time=2026-11-28T02:00:06.000Z :op!o@h MODE #chan +o carol',
      '@batch=h1;time=2026-11-28T02:00:07.000Z :dave!d@h JOIN #chan',
      ':irc BATCH -h1',
    );
    expect(h.reports).toEqual([]);
    expect(h.events.inChannel('alice', '#chan')).toBe(true);
    h.feed(':erin!e@h PRIVMSG #chan :live');
    expect(h.of('message')).toHaveLength(1);
  });
});
