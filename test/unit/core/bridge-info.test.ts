import { describe, expect, it } from 'vitest';
import { bridgeInfoEvent, BridgeInfoSync } from '../../../packages/core/src/bridge/bridgeInfo.js';
import { openDatabase } from '../../../packages/core/src/db/database.js';
import { KvStore } from '../../../packages/core/src/db/kv.js';
import { MatrixError } from '../../../packages/core/src/matrix/client.js';
import type { NetworkConnector, PortalInfo } from '../../../packages/core/src/network/contract.js';
import { silentLogger } from '../../../packages/core/src/util/log.js';

const bot = '@trestle:example.org';
const irc = { id: 'irc', displayname: 'IRC' };

describe('bridgeInfoEvent (MSC2346 content)', () => {
  it.each([
    {
      what: 'an IRC channel on a server',
      input: { bot, protocol: irc, kind: 'portal' as const, network: { id: 'libera', displayname: 'Libera.Chat' }, channel: { id: '#rust', displayname: '#Rust' } },
      stateKey: 'trestle://irc/libera/#rust',
      content: { bridgebot: bot, protocol: irc, network: { id: 'libera', displayname: 'Libera.Chat' }, channel: { id: '#rust', displayname: '#Rust' } },
    },
    {
      what: 'a plumbed link with its creator; a `/` and `%` inside an id are escaped in the state key',
      input: {
        bot, protocol: { id: 'discord', displayname: 'Discord' }, kind: 'plumbed' as const, creator: '@alice:example.org',
        network: { id: '1', displayname: 'Guild' }, channel: { id: '2/3%', external_url: 'https://discord.com/channels/1/3' },
      },
      stateKey: 'trestle://discord/1/2%2F3%25',
      content: {
        bridgebot: bot, creator: '@alice:example.org', protocol: { id: 'discord', displayname: 'Discord' },
        network: { id: '1', displayname: 'Guild' }, channel: { id: '2/3%', external_url: 'https://discord.com/channels/1/3' },
      },
    },
    {
      what: 'no network part; empty names left out',
      input: { bot, protocol: irc, kind: 'plumbed' as const, channel: { id: 'x', displayname: '', external_url: '' } },
      stateKey: 'trestle://irc/x',
      content: { bridgebot: bot, protocol: irc, channel: { id: 'x' } },
    },
    {
      what: 'a direct chat, marked as mautrix marks them',
      input: { bot, protocol: irc, kind: 'dm' as const, network: { id: 'libera' }, channel: { id: 'bob', displayname: 'Bob' } },
      stateKey: 'trestle://irc/libera/bob',
      content: { bridgebot: bot, protocol: irc, network: { id: 'libera' }, channel: { id: 'bob', displayname: 'Bob' }, 'com.beeper.room_type': 'dm' },
    },
  ])('$what', ({ input, stateKey, content }) => {
    const ev = bridgeInfoEvent(input);
    expect(ev.stateKey).toBe(stateKey);
    expect(ev.content).toStrictEqual(content);
  });
});

/** The sync against a homeserver stand-in that records state writes and refuses rooms in `forbidden`. */
function setup() {
  const kv = new KvStore(openDatabase(':memory:'));
  const sent: { roomId: string; type: string; stateKey: string; content: Record<string, unknown>; as?: string }[] = [];
  const forbidden = new Set<string>();
  let name = '#rust';
  const network = {
    identity: { id: 'irc', displayName: 'IRC', userPrefix: 'irc_', ghostLocalpart: (u: string) => u },
    bridgeInfo: (p: PortalInfo) => ({ network: { id: 'libera' }, channel: { id: p.remoteChat, displayname: name } }),
  } as unknown as NetworkConnector;
  const sync = new BridgeInfoSync({
    enabled: true, bot, kv, network: () => network, log: silentLogger,
    setState: async (roomId, type, stateKey, content, as) => {
      if (forbidden.has(roomId)) throw new MatrixError('not allowed', 'M_FORBIDDEN', 403);
      sent.push({ roomId, type, stateKey, content, ...(as ? { as } : {}) });
    },
  });
  return { sync, sent, forbidden, rename: (n: string) => { name = n; } };
}
const portal = (roomId: string, over: Partial<PortalInfo> = {}): PortalInfo => ({ roomId, network: 'irc', remoteChat: '#rust', kind: 'plumbed', data: {}, ...over });

describe('BridgeInfoSync', () => {
  it('sends both event types once; sends again only when the description changes; empties them on unlink', async () => {
    const { sync, sent, rename } = setup();
    sync.noteCreator('!a:x', 'irc', '#rust', '@alice:x');
    sync.linked(portal('!a:x'));
    await sync.idle();
    expect(sent.map((s) => s.type)).toEqual(['m.bridge', 'uk.half-shot.bridge']);
    expect(sent[0]!.content).toMatchObject({ creator: '@alice:x', channel: { displayname: '#rust' } });
    await sync.catchUp([portal('!a:x')]);
    expect(sent).toHaveLength(2); // nothing changed: nothing sent
    rename('#Rust');
    await sync.catchUp([portal('!a:x')]);
    expect(sent).toHaveLength(4);
    expect(sent[3]!.content).toMatchObject({ creator: '@alice:x', channel: { displayname: '#Rust' } });
    sync.unlinked(portal('!a:x'));
    await sync.idle();
    expect(sent.slice(4).map((s) => [s.type, s.stateKey, s.content])).toEqual([
      ['m.bridge', 'trestle://irc/libera/#rust', {}], ['uk.half-shot.bridge', 'trestle://irc/libera/#rust', {}],
    ]);
  });

  it('a room that refuses is asked once, and not emptied on unlink; a link made again asks again', async () => {
    const { sync, sent, forbidden } = setup();
    forbidden.add('!p:x');
    sync.linked(portal('!p:x'));
    await sync.idle();
    await sync.catchUp([portal('!p:x')]);
    forbidden.delete('!p:x');
    sync.unlinked(portal('!p:x'));
    await sync.idle();
    expect(sent).toEqual([]);
    forbidden.add('!q:x');
    sync.noteCreator('!q:x', 'irc', '#rust', '@alice:x');
    sync.linked(portal('!q:x'));
    await sync.idle();
    forbidden.delete('!q:x'); // the room's admins gave the bot the power, and link again
    sync.noteCreator('!q:x', 'irc', '#rust', '@alice:x');
    sync.linked(portal('!q:x'));
    await sync.idle();
    expect(sent.map((s) => [s.roomId, s.type, s.content['creator']])).toEqual([['!q:x', 'm.bridge', '@alice:x'], ['!q:x', 'uk.half-shot.bridge', '@alice:x']]);
  });

  it('a direct chat is announced by its ghost; an upgrade carries the creator to the new room', async () => {
    const { sync, sent } = setup();
    sync.linked(portal('!dm:x', { kind: 'dm', data: { ghost: '@irc_bob:x' } }));
    sync.noteCreator('!old:x', 'irc', '#rust', '@alice:x');
    sync.moving('!old:x', '!new:x', 'irc', '#rust');
    sync.linked(portal('!new:x'));
    await sync.idle();
    expect(sent.filter((s) => s.roomId === '!dm:x').map((s) => s.as)).toEqual(['@irc_bob:x', '@irc_bob:x']);
    expect(sent.find((s) => s.roomId === '!new:x')!.content).toMatchObject({ creator: '@alice:x' });
  });
});
