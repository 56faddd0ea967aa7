// Private chats and the ghosts they are with (ids.ts, server.ts, network.ts, listen.ts, store.ts): a
// private chat is keyed by the IRC user's ghost, not by the nick they had when they wrote, so a nick
// change keeps one room; a Matrix reply goes to the nick that ghost has now, and is refused (the sender
// told) when the bridge cannot tell which that is; a nick someone changed to stops standing for their
// ghost once they are gone; a DM room its Matrix user left is given up. The real IrcNetwork, IrcServer
// and store; the Matrix user's own connection talks to a scripted peer on 127.0.0.1, the bridge's
// listening connection is fed lines (no socket).
import { join } from 'node:path';
import type { Server, Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { MatrixMembership, MatrixMessage, NetworkContext, PortalInfo } from '@trestle/core';
import { migrate, openDatabase } from '../../../packages/core/src/db/database.js';
import { silentLogger } from '../../../packages/core/src/util/log.js';
import { ircConfigSchema } from '../../../packages/irc/src/config.js';
import { ircLower } from '../../../packages/irc/src/ids.js';
import { IrcNetwork } from '../../../packages/irc/src/network.js';
import { IrcServer } from '../../../packages/irc/src/server.js';
import { IrcStore, PasswordBox, ircMigrations } from '../../../packages/irc/src/store.js';
import { linePeer, registersAsAsked } from './line-peer.js';
import { tempDir } from '../temp.js';

const USER = '@uma:x';
let peerServer: Server | undefined;
let ircServer: IrcServer | undefined;
afterEach(() => { vi.useRealTimers(); ircServer?.stop(); peerServer?.close(); ircServer = undefined; peerServer = undefined; });

type Report = { t: string } & Record<string, unknown>;

/**
 * The network with one server, `net`. The peer registers the Matrix user's connection, answers its
 * PINGs, and answers a PRIVMSG to `gone` with 401 (no such nick), as an IRC server does. Core's side
 * is a context that keeps portals in a list and opens a DM room for a chat that has none, as core does.
 */
async function bridge() {
  const heard: string[] = [];
  let userSocket: Socket | undefined;
  const peer = await linePeer((s: Socket) => {
    const reg = registersAsAsked(s);
    return (line) => {
      if (!reg.line(line)) { if (line === 'CAP END') userSocket = s; return; }
      const nick = reg.nick();
      heard.push(line);
      if (line.startsWith('PING ')) s.write(`:srv PONG srv ${line.slice(5)}\r\n`);
      const to = /^PRIVMSG (\S+) /.exec(line)?.[1];
      if (to && ircLower(to) === 'gone') s.write(`:srv 401 ${nick} ${to} :No such nick/channel\r\n`);
    };
  });
  peerServer = peer.server;
  const cfg = ircConfigSchema.parse({
    passwordKeyFile: join(tempDir('trestle-irc-pm-'), 'irc.key'),
    servers: { net: { host: '127.0.0.1', port: peer.port, botNick: 'bridge' } },
  });
  const dir = tempDir('trestle-irc-pm-');
  const db = openDatabase(join(dir, 'bridge.db'));
  migrate(db, 'irc', ircMigrations);
  const store = new IrcStore(db, new PasswordBox(join(dir, 'irc.key')));
  const portals: PortalInfo[] = [];
  const opened: { chat: string; ghost: string }[] = [];
  const reports: Report[] = [];
  const forChat = (c: string): PortalInfo[] => portals.filter((p) => p.remoteChat === c);
  const ctx = {
    log: silentLogger, kv: new Map(), domain: 'x',
    remote: new Proxy({}, { get: (_t, t: string) => async (x: Record<string, unknown>) => { reports.push({ t, ...x }); } }),
    matrix: { notice: async () => undefined },
    notifyUser: async () => undefined,
    portals: {
      forChat, forRoom: (r: string) => portals.filter((p) => p.roomId === r), all: () => [...portals],
      link: (roomId: string, remoteChat: string, o?: { kind?: PortalInfo['kind'] }) => {
        const p = { roomId, remoteChat, kind: o?.kind ?? 'plumbed', network: 'irc', data: {} } as PortalInfo;
        portals.push(p);
        return p;
      },
      unlink: (roomId: string, chat: string) => {
        const i = portals.findIndex((p) => p.roomId === roomId && p.remoteChat === chat);
        if (i >= 0) portals.splice(i, 1);
        return i >= 0;
      },
      refreshBridgeInfo: () => undefined,
    },
    // core's: the chat's room if it has one, else a new DM room
    openDirectChat: async (req: { chat: string; matrixUser: string; remoteUser: { id: string } }) => {
      const existing = forChat(req.chat)[0];
      if (existing) return existing;
      const p = { roomId: `!dm${opened.length + 1}:x`, remoteChat: req.chat, kind: 'dm', network: 'irc', data: { matrixUser: req.matrixUser, ghost: req.remoteUser.id } } as PortalInfo;
      portals.push(p);
      opened.push({ chat: req.chat, ghost: req.remoteUser.id });
      return p;
    },
    remoteUserOf: () => undefined,
    bridged: () => false,
  } as unknown as NetworkContext;
  const net = new IrcNetwork('irc', cfg);
  net.ctx = ctx;
  net.store = store;
  const server = ircServer = new IrcServer('net', cfg.servers['net']!, ctx, store);
  net.servers.set('net', server);
  const listener = server.listener.client.connection as unknown as { addReadBuffer(line: string): void };
  const messages = (): Report[] => reports.filter((r) => r.t === 'message');
  let eventSeq = 0;
  return {
    net, server, store, portals, opened, reports, heard, messages,
    /** Lines the bridge's listening connection reads. */
    feed: (...lines: string[]): void => { for (const l of lines) listener.addReadBuffer(`${l}\r\n`); },
    /** The Matrix user's connection, registered. */
    connect: async (): Promise<void> => { await server.clientFor(USER, 'Uma').connect(); },
    /** `from` writes to the Matrix user on IRC; resolves once it is in their DM room. */
    pm: async (from: string, text: string): Promise<Report> => {
      const before = messages().length;
      userSocket!.write(`:${from}!u@h PRIVMSG ${server.clients.get(USER)!.nick} :${text}\r\n`);
      await until(() => messages().length > before);
      return messages()[before]!;
    },
    /** The Matrix user writes in a room of theirs. */
    reply: (roomId: string, body: string) => net.handleMatrixMessage({
      portal: { roomId, remoteChat: portals.find((p) => p.roomId === roomId)!.remoteChat, kind: 'dm' },
      eventId: `$e${++eventSeq}`, sender: { userId: USER, displayName: 'Uma' }, body, msgtype: 'm.text',
    } as MatrixMessage),
    /** The Matrix user leaves a room of theirs. */
    leave: (roomId: string) => net.handleMatrixMembership({
      portal: { roomId, remoteChat: portals.find((p) => p.roomId === roomId)!.remoteChat, kind: 'dm' },
      eventId: `$e${++eventSeq}`, sender: { userId: USER, displayName: 'Uma' }, target: { userId: USER, displayName: 'Uma' }, membership: 'leave',
    } as MatrixMembership),
    /** Who the joins reported for a channel were. */
    joinsOf: (): string[] => reports.filter((r) => r.t === 'membership' && r['membership'] === 'join').map((r) => (r['user'] as { id: string }).id),
  };
}

const until = async (ok: () => boolean, ms = 3000): Promise<void> => {
  for (const end = Date.now() + ms; !ok(); await new Promise((r) => setTimeout(r, 10))) if (Date.now() > end) throw new Error('timed out');
};

/** The bridge's listening connection joins #chan, where these nicks are. */
const inChannel = (names: string): string[] =>
  [':bridge!u@h JOIN #chan', `:srv 353 bridge = #chan :bridge ${names}`, ':srv 366 bridge #chan :End of /NAMES list.'];

const privmsgs = (heard: string[]): string[] => heard.filter((l) => l.startsWith('PRIVMSG '));

// Found in review: private chats were keyed by the nick the IRC user had when they wrote, and the reply
// side read that nick as a ghost key, taking whichever nick row of that ghost came first.
describe('a private chat is with the IRC user, whatever their nick', () => {
  it('a nick change keeps one DM room, and the reply goes to the new nick', async () => {
    const b = await bridge();
    await b.connect();
    b.feed(...inChannel('alice'));
    const first = await b.pm('alice', 'hi');
    b.feed(':alice!a@h NICK alice_away');
    const second = await b.pm('alice_away', 'still me');
    expect(b.opened).toEqual([{ chat: `net/pm/${USER}/alice`, ghost: 'net/alice' }]);
    expect([first['chat'], second['chat']]).toEqual([`net/pm/${USER}/alice`, `net/pm/${USER}/alice`]);
    expect((second['sender'] as { id: string }).id).toBe('net/alice');
    await b.reply('!dm1:x', 'hello again');
    expect(privmsgs(b.heard)).toEqual(['PRIVMSG alice_away :hello again']);
  });

  it('a direct chat started from Matrix with a renamed ghost is the one their private messages come to', async () => {
    const b = await bridge();
    await b.connect();
    b.feed(...inChannel('alice'), ':alice!a@h NICK alice_away');
    await until(() => b.server.events.inChannel('alice_away', '#chan'));
    const chat = await b.net.directChatFor({ matrixUser: USER, remoteUser: 'net/alice' });
    expect(chat).toBe(`net/pm/${USER}/alice`);
    b.portals.push({ roomId: '!started:x', remoteChat: chat!, kind: 'dm', network: 'irc', data: {} });
    expect((await b.pm('alice_away', 'hi'))['chat']).toBe(chat);
    expect(b.opened).toEqual([]);
    await b.reply('!started:x', 'hey');
    expect(privmsgs(b.heard)).toEqual(['PRIVMSG alice_away :hey']);
  });

  it('a reply goes to the nick the ghost has now, not to another nick its account used (someone else may have it)', async () => {
    const b = await bridge();
    await b.connect();
    b.feed('@account=ali :alice!a@h PRIVMSG #chan :hello'); // logged in as ali: the account's ghost is alice
    await b.pm('alice', 'psst');
    // she comes back as alice_, logged in: the same ghost; whoever has `alice` now is not her
    b.feed('@account=ali :alice_!a@h PRIVMSG #chan :back');
    expect(b.messages().map((m) => (m['sender'] as { id: string }).id)).toEqual(['net/alice', 'net/alice', 'net/alice']);
    await b.reply('!dm1:x', 'for alice only');
    expect(privmsgs(b.heard)).toEqual(['PRIVMSG alice_ :for alice only']);
  });

  it('a reply to someone gone under a nick they changed to is refused (and the sender told), not sent to its next holder', async () => {
    const b = await bridge();
    await b.connect();
    b.feed(...inChannel('alice'));
    await b.pm('alice', 'hi');
    b.feed(':alice!a@h NICK Guest123', ':Guest123!a@h QUIT :Quit: bye');
    const sent = b.reply('!dm1:x', 'are you there?');
    await expect(sent).rejects.toMatchObject({ permanent: true, message: expect.stringMatching(/does not know which nick alice uses/) });
    expect(privmsgs(b.heard)).toEqual([]);
    // back as herself and seen: reachable again
    b.feed(':alice!a@h JOIN #chan');
    await b.reply('!dm1:x', 'welcome back');
    expect(privmsgs(b.heard)).toEqual(['PRIVMSG alice :welcome back']);
  });

  it('someone who left IRC: the server\'s 401 fails the reply for good, so core tells the sender', async () => {
    const b = await bridge();
    await b.connect();
    await b.pm('gone', 'bye now');
    await expect(b.reply('!dm1:x', 'wait')).rejects.toMatchObject({ permanent: true, message: expect.stringMatching(/No such nick/) });
  });

  it('a DM room from before, keyed by the nick then, keeps working', async () => {
    const b = await bridge();
    await b.connect();
    b.portals.push({ roomId: '!old:x', remoteChat: `net/pm/${USER}/bob`, kind: 'dm', network: 'irc', data: {} });
    expect((await b.pm('Bob', 'hi'))['chat']).toBe(`net/pm/${USER}/bob`);
    expect(b.opened).toEqual([]);
    await b.reply('!old:x', 'hi bob');
    // (one from before keyed by a nick changed to, its ghost's key another: that nick, as before)
    b.portals.push({ roomId: '!older:x', remoteChat: `net/pm/${USER}/carol_away`, kind: 'dm', network: 'irc', data: {} });
    await b.reply('!older:x', 'hi carol');
    expect(privmsgs(b.heard)).toEqual(['PRIVMSG Bob :hi bob', 'PRIVMSG carol_away :hi carol']);
  });
});

// Found in review: a nick's ghost binding was never dropped, so the next person with a nick someone
// changed to (Guest123 after a services rename) posted as that someone's ghost.
describe('a nick someone changed to stands for their ghost while they are there', () => {
  it('after their QUIT, the next holder of the nick is a ghost of their own; the same person back under their first nick is theirs', async () => {
    const b = await bridge();
    b.feed(...inChannel('alice'), ':alice!a@h NICK Guest123', ':Guest123!a@h QUIT :Quit: bye');
    b.reports.length = 0;
    b.feed(':Guest123!g@h JOIN #chan', ':alice!a@h JOIN #chan');
    expect(b.joinsOf()).toEqual(['net/guest123', 'net/alice']);
  });

  it('a netsplit quit keeps the binding while it is held; once its hold runs out, it goes', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const b = await bridge();
    b.feed(...inChannel('alice'), ':alice!a@h NICK alice_away', ':alice_away!a@h QUIT :*.net *.split');
    vi.advanceTimersByTime(30_000);
    expect(b.store.peekGhostKey('net', 'alice_away')).toBe('alice');
    b.reports.length = 0;
    b.feed(':alice_away!a@h JOIN #chan'); // back from the split: the ghost never left
    expect(b.joinsOf()).toEqual([]);
    expect(b.store.peekGhostKey('net', 'alice_away')).toBe('alice');
    b.feed(':alice_away!a@h QUIT :*.net *.split');
    vi.advanceTimersByTime(59_000);
    expect(b.store.peekGhostKey('net', 'alice_away')).toBe('alice');
    vi.advanceTimersByTime(2_000);
    expect(b.reports.filter((r) => r.t === 'membership').map((r) => [(r['user'] as { id: string }).id, r['membership']])).toEqual([['net/alice', 'leave']]);
    expect(b.store.peekGhostKey('net', 'alice_away')).toBe('alice_away');
  });

  it('a JOIN of the nick from nowhere (the listener lost sight of its holder) is someone new', async () => {
    const b = await bridge();
    b.feed(...inChannel('alice'), ':alice!a@h NICK alice_away', ':alice_away!a@h PART #chan');
    b.reports.length = 0;
    b.feed(':alice_away!x@y JOIN #chan');
    expect(b.joinsOf()).toEqual(['net/alice_away']);
  });

  it('keeps an account\'s nicks and a nick still in a channel', async () => {
    const b = await bridge();
    b.feed(...inChannel('alice bob'), '@account=ali :alice!a@h PRIVMSG #chan :hi', '@account=ali :alice_!a@h PRIVMSG #chan :hi',
      ':bob!b@h NICK bobby', ':alice_!a@h QUIT :bye');
    b.reports.length = 0;
    b.feed(':alice_!a@h JOIN #chan', ':bobby!b@h JOIN #other');
    expect(b.joinsOf()).toEqual(['net/alice', 'net/bob']);
  });
});

// Found in review: a PM portal whose Matrix user left stayed linked, so later private messages went to
// a room nobody reads.
describe('a DM room its Matrix user left', () => {
  it('is unlinked: the next private message opens a new one, and the user is invited to it', async () => {
    const b = await bridge();
    await b.connect();
    await b.pm('alice', 'hi');
    await b.leave('!dm1:x');
    expect(b.portals).toEqual([]);
    expect((await b.pm('alice', 'are you there?'))['chat']).toBe(`net/pm/${USER}/alice`);
    expect(b.opened.map((o) => o.chat)).toEqual([`net/pm/${USER}/alice`, `net/pm/${USER}/alice`]);
    expect(b.portals.map((p) => p.roomId)).toEqual(['!dm2:x']);
  });

  it('stays linked when someone else leaves it', async () => {
    const b = await bridge();
    await b.connect();
    await b.pm('alice', 'hi');
    await b.net.handleMatrixMembership({
      portal: { roomId: '!dm1:x', remoteChat: `net/pm/${USER}/alice`, kind: 'dm' }, eventId: '$x',
      sender: { userId: '@eve:x', displayName: 'Eve' }, target: { userId: '@eve:x', displayName: 'Eve' }, membership: 'leave',
    } as MatrixMembership);
    expect(b.portals.map((p) => p.roomId)).toEqual(['!dm1:x']);
  });
});
