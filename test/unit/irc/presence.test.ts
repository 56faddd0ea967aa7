import { afterEach, describe, expect, it, vi } from 'vitest';
import { IrcPresence, ircGhostPresence, RETRY_MS, type IrcUserState } from '../../../packages/irc/src/presence.js';
import { ircLower } from '../../../packages/irc/src/ids.js';
import { silentLogger } from '../../../packages/core/src/util/log.js';

describe('ircGhostPresence: what the listener knows of an IRC user → Matrix presence', () => {
  it.each<[string, IrcUserState, ReturnType<typeof ircGhostPresence>]>([
    ['in a channel, not away', { inChannel: true }, { presence: 'online' }],
    ['away with a message', { inChannel: true, away: 'gone fishing' }, { presence: 'unavailable', statusMsg: 'gone fishing' }],
    ['away, message known only as G from WHO', { inChannel: true, away: '' }, { presence: 'unavailable' }],
    ['away message loses its IRC colours and bold', { inChannel: true, away: '\x0304,01lunch\x03 \x02now\x02 ' }, { presence: 'unavailable', statusMsg: 'lunch now' }],
    ['away message of only formatting codes', { inChannel: true, away: '\x02\x0f' }, { presence: 'unavailable' }],
    ['in no bridged channel', { inChannel: false }, { presence: 'offline' }],
    ['in no bridged channel, away: still offline', { inChannel: false, away: 'brb' }, { presence: 'offline' }],
  ])('%s', (_name, input, expected) => {
    expect(ircGhostPresence(input)).toEqual(expected);
  });
});

/** IrcPresence on a listener's view (who is in a channel, which nicks are ours) and a homeserver recording what it was told. */
function setup(opts: { ghosts?: string[]; own?: string[] } = {}) {
  const inChannel = new Set<string>();
  const ghosts = opts.ghosts ? new Set(opts.ghosts) : undefined; // undefined: everyone has a ghost
  const sent: string[] = [];
  const p = new IrcPresence({
    inChannel: (nick) => inChannel.has(ircLower(nick)),
    isOwn: (nick) => (opts.own ?? []).map(ircLower).includes(ircLower(nick)),
    userOf: (nick) => `test/${ircLower(nick)}`,
    setPresence: async (user, presence, statusMsg) => {
      if (ghosts && !ghosts.has(user)) return false;
      sent.push(`${user} ${presence}${statusMsg ? ` ${statusMsg}` : ''}`);
      return true;
    },
    refreshSeconds: 0, log: silentLogger,
  });
  const settle = (): Promise<void> => new Promise((r) => setImmediate(r));
  return { p, sent, inChannel, ghosts, settle };
}

describe('IrcPresence: away, back, part and quit → the ghost\'s presence', () => {
  afterEach(() => { vi.useRealTimers(); });

  it('joined → online; AWAY :reason → unavailable with it; AWAY → online; QUIT → offline', async () => {
    const { p, sent, inChannel, settle } = setup();
    inChannel.add('bob');
    p.sync('Bob');
    p.setAway('Bob', 'gone fishing');
    p.setBack('bob');
    inChannel.delete('bob'); // the listener saw them quit
    p.sync('Bob');
    await settle();
    expect(sent).toEqual(['test/bob online', 'test/bob unavailable gone fishing', 'test/bob online', 'test/bob offline']);
  });

  it('WHO: G is away without a message (a message already known is kept), H is here', async () => {
    const { p, sent, inChannel, settle } = setup();
    for (const n of ['ann', 'cid', 'dee']) inChannel.add(n);
    p.setAway('dee', 'on holiday');
    p.who([{ nick: 'ann', away: true }, { nick: 'cid', away: false }, { nick: 'dee', away: true }]);
    await settle();
    expect(sent).toEqual(['test/dee unavailable on holiday', 'test/ann unavailable', 'test/cid online']);
  });

  it('leaving one of two channels changes nothing; leaving the last one is offline, and forgets the away', async () => {
    const { p, sent, inChannel, settle } = setup();
    inChannel.add('bob');
    p.setAway('bob', 'zzz');
    p.sync('bob'); // parted one channel, still in another
    inChannel.delete('bob');
    p.sync('bob'); // parted the last
    inChannel.add('bob');
    p.sync('bob'); // joined again, not away (the server would send AWAY after the JOIN if they were)
    await settle();
    expect(sent).toEqual(['test/bob unavailable zzz', 'test/bob offline', 'test/bob online']);
  });

  it('a nick change keeps the away message (the same person)', async () => {
    const { p, sent, inChannel, settle } = setup();
    inChannel.add('bob');
    p.setAway('bob', 'zzz');
    p.renamed('bob', 'bob_away');
    inChannel.delete('bob'); inChannel.add('bob_away');
    p.who([{ nick: 'bob_away', away: true }]);
    await settle();
    expect(sent).toEqual(['test/bob unavailable zzz', 'test/bob_away unavailable zzz']);
  });

  it('never sets the presence of the bridge\'s own nicks (the listener, Matrix users\' connections)', async () => {
    const { p, sent, inChannel, settle } = setup({ own: ['trestle', 'alice[m]'] });
    inChannel.add('trestle'); inChannel.add(ircLower('alice[m]'));
    p.sync('trestle');
    p.setAway('Alice[m]', 'afk');
    p.who([{ nick: 'trestle', away: false }, { nick: 'alice[m]', away: true }]);
    await settle();
    expect(sent).toEqual([]);
  });

  it('a user whose ghost is not made yet gets their state once it is (tried again every RETRY_MS)', async () => {
    vi.useFakeTimers();
    const { p, sent, inChannel, ghosts } = setup({ ghosts: [] });
    inChannel.add('bob');
    p.sync('bob');
    p.setAway('bob', 'lunch');
    await vi.advanceTimersByTimeAsync(RETRY_MS);
    expect(sent).toEqual([]);
    ghosts!.add('test/bob'); // the join was delivered: the ghost exists
    await vi.advanceTimersByTimeAsync(RETRY_MS);
    expect(sent).toEqual(['test/bob unavailable lunch']);
    await vi.advanceTimersByTimeAsync(10 * RETRY_MS);
    expect(sent).toHaveLength(1);
    await p.stop();
  });

  it('the listener\'s connection lost: every ghost shown as not offline goes offline', async () => {
    const { p, sent, inChannel, settle } = setup();
    inChannel.add('ann'); inChannel.add('bob');
    p.sync('ann');
    p.setAway('bob', 'zzz');
    await settle();
    sent.length = 0;
    p.lost();
    await settle();
    expect(sent.sort()).toEqual(['test/ann offline', 'test/bob offline']);
  });
});
