// The IRC commands that put a user's words on the wire (whois, join, cmd) against a scripted peer
// on 127.0.0.1: the real IrcNetwork, IrcServer and store, the bridge's own connection (irc-framework)
// and the user's (lean.ts). What matters is what the peer hears: never a second line smuggled in an
// argument, never a channel list where one channel was checked, never a raw line that acts beyond
// the user's own session or outside the channels the bridge lets them in.
import { join } from 'node:path';
import type { Server, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { CommandInvocation, NetworkContext, PortalInfo } from '@trestle/core';
import { migrate, openDatabase } from '../../../packages/core/src/db/database.js';
import { silentLogger } from '../../../packages/core/src/util/log.js';
import { parseRawCommand, paramRefusal, rawTargetRefusal } from '../../../packages/irc/src/commands.js';
import { ircConfigSchema } from '../../../packages/irc/src/config.js';
import { channelChat } from '../../../packages/irc/src/ids.js';
import { IrcNetwork } from '../../../packages/irc/src/network.js';
import { IrcServer } from '../../../packages/irc/src/server.js';
import { IrcStore, PasswordBox, ircMigrations } from '../../../packages/irc/src/store.js';
import { linePeer, registersAsAsked } from './line-peer.js';
import { tempDir } from '../temp.js';

const USER = '@uma:x';
let peerServer: Server | undefined;
let net: IrcNetwork | undefined;
afterEach(() => { for (const s of net?.servers.values() ?? []) s.stop(); peerServer?.close(); net = undefined; });

/**
 * A peer that registers every connection under the nick it asks for, echoes a JOIN, answers PING and
 * a WHOIS of alice; every line after registration is heard, with the nick of the connection.
 */
async function peer(): Promise<{ port: number; heard: { nick: string; line: string }[] }> {
  const heard: { nick: string; line: string }[] = [];
  let port: number;
  ({ server: peerServer, port } = await linePeer((s: Socket) => {
    const reg = registersAsAsked(s);
    return (line) => {
      const before = reg.nick();
      if (!reg.line(line)) return;
      const nick = reg.nick();
      heard.push({ nick, line });
      if (line.startsWith('NICK ')) s.write(`:${before}!u@h NICK ${nick}\r\n`);
      const joined = /^JOIN (\S+)/.exec(line);
      if (joined) s.write(`:${nick}!u@h JOIN ${joined[1]}\r\n`);
      if (line.startsWith('PING ')) s.write(`:srv PONG srv ${line.slice(5)}\r\n`);
      if (line === 'WHOIS alice') s.write(`:srv 311 ${nick} alice al host * :Alice A\r\n:srv 318 ${nick} alice :End of WHOIS\r\n`);
    };
  }));
  return { port, heard };
}

/** The network with one server, `net`, on the peer; `#excluded` may never be bridged. */
async function bridge(): Promise<{ net: IrcNetwork; server: IrcServer; heard: { nick: string; line: string }[] }> {
  const p = await peer();
  const cfg = ircConfigSchema.parse({
    passwordKeyFile: join(tempDir('trestle-irc-cmds-'), 'irc.key'),
    servers: { net: { host: '127.0.0.1', port: p.port, botNick: 'bridge', dynamicChannels: { exclude: ['#excluded'] } } },
  });
  const dir = tempDir('trestle-irc-cmds-');
  const db = openDatabase(join(dir, 'bridge.db'));
  migrate(db, 'irc', ircMigrations);
  const store = new IrcStore(db, new PasswordBox(join(dir, 'irc.key')));
  const portals = new Map<string, PortalInfo[]>();
  const ctx = {
    log: silentLogger, kv: new Map(),
    remote: new Proxy({}, { get: () => async () => undefined }),
    matrix: { notice: async () => undefined },
    portals: { forChat: (c: string) => portals.get(c) ?? [], forRoom: () => [], all: () => [...portals.values()].flat() },
    openPortal: async (req: { chat: string }) => {
      const portal = { roomId: `!${req.chat}:x`, remoteChat: req.chat, kind: 'portal' } as unknown as PortalInfo;
      portals.set(req.chat, [portal]);
      return portal;
    },
  } as unknown as NetworkContext;
  net = new IrcNetwork('irc', cfg);
  net.ctx = ctx;
  net.store = store;
  const server = new IrcServer('net', cfg.servers['net']!, ctx, store);
  net.servers.set('net', server);
  return { net, server, heard: p.heard };
}

/** Run a command as USER in their admin room; its reply, or 'no reply' when it takes over 2 s. */
function run(n: IrcNetwork, name: string, args: Record<string, string | undefined>): Promise<string> {
  const inv = {
    sender: USER, roomId: '!admin:x', args, powerLevel: 0, inAdminRoom: true, isAdmin: false,
    reply: async () => undefined, senderName: async () => 'Uma',
  } as unknown as CommandInvocation;
  return Promise.race([
    n.commands.find((c) => c.name === name)!.run(inv).then((r) => r ?? '', (err: Error) => `failed: ${err.message}`),
    new Promise<string>((r) => setTimeout(() => r('no reply'), 2000)),
  ]);
}

const until = async (ok: () => boolean, ms = 3000): Promise<void> => {
  for (const end = Date.now() + ms; !ok(); await new Promise((r) => setTimeout(r, 10))) if (Date.now() > end) throw new Error('timed out');
};

/** Lines the peer heard from the bridge's own connection, once a PING written after everything else has come. */
async function listenerHeard(b: Awaited<ReturnType<typeof bridge>>): Promise<string[]> {
  b.server.listener.raw('PING :flushed');
  await until(() => b.heard.some((h) => h.line === 'PING :flushed'));
  return b.heard.filter((h) => h.nick === 'bridge').map((h) => h.line);
}

describe('paramRefusal: one nick, channel or key, as one IRC parameter', () => {
  it.each<[string, string, RegExp | undefined]>([
    ['nick', 'Alice[m]', undefined],
    ['channel', '#chan', undefined],
    ['key', 's3cret', undefined],
    ['nick', 'x\nPRIVMSG NickServ :SET PASSWORD pwned', /"x\\nPRIVMSG NickServ :SET PASSWORD pwned" holds a space or a control character/],
    ['key', 'k\r\nQUIT', /control character/],
    ['nick', 'a\0b', /control character/],
    ['nick', 'two words', /space/],
    ['nick', 'tab\there', /space or a control character/],
    ['nick', 'bell\x07', /control character/],
    ['channel', '#ok,#excluded', /"#ok,#excluded" holds a comma/],
    ['key', 'a,b', /comma/],
    ['nick', ':x', /colon/],
  ])('%s %j', (what, word, why) => {
    const got = paramRefusal(`The ${what}`, word);
    if (why) expect(got).toMatch(why); else expect(got).toBeUndefined();
    if (why) expect(got).toMatch(new RegExp(`^The ${what} `));
  });
});

describe('nick', () => {
  it("refuses another Matrix user's nick, held or wanted, even while their connection is closed", async () => {
    const b = await bridge();
    b.net.store!.setHeldNick('@bob:x', 'net', 'Bob[m]');
    b.net.store!.setWantedNick('@cal:x', 'net', 'Cal[m]', 'Cal');
    expect(await run(b.net, 'nick', { server: 'net', nick: 'bob{m}' })).toBe("Nick not changed: bob{m} is another Matrix user's nick on net.");
    expect(await run(b.net, 'nick', { server: 'net', nick: 'Cal[m]' })).toMatch(/another Matrix user's nick/);
    expect(b.heard.filter((h) => h.line.startsWith('NICK ') && h.nick !== 'bridge' && /bob|cal/i.test(h.line))).toEqual([]);
    expect(await run(b.net, 'nick', { server: 'net', nick: 'Umami' })).toBe('Your nick on net is now Umami.');
  });
});

describe('whois', () => {
  it('answers from the server', async () => {
    const b = await bridge();
    await b.server.listener.connect();
    expect(await run(b.net, 'whois', { server: 'net', nick: 'alice' })).toBe('alice is al@host (Alice A)');
  });

  it('refuses a nick holding a line break, naming it, and the bot sends nothing for it', async () => {
    const b = await bridge();
    await b.server.listener.connect();
    const reply = await run(b.net, 'whois', { server: 'net', nick: 'x\nPRIVMSG NickServ :SET PASSWORD pwned' });
    expect(reply).toMatch(/^The nick "x\\nPRIVMSG NickServ :SET PASSWORD pwned" holds/);
    expect(await listenerHeard(b)).toEqual(['PING :flushed']);
  });

  it('says so at once when the bridge\'s connection is down, instead of waiting for good', async () => {
    const b = await bridge();
    expect(await run(b.net, 'whois', { server: 'net', nick: 'alice' })).toMatch(/^Could not look up alice on net: .*not connected/);
    expect(b.server.listener.client.listenerCount('whois')).toBe(0);
  });
});

describe('join', () => {
  it('refuses a list of channels: the exclusion check sees exactly one', async () => {
    const b = await bridge();
    expect(await run(b.net, 'join', { server: 'net', channel: '#ok,#excluded' })).toMatch(/^The channel "#ok,#excluded" holds a comma/);
    expect(await run(b.net, 'join', { server: 'net', channel: '#excluded' })).toBe('Cannot join: #excluded is excluded from bridging.');
    await b.server.listener.connect();
    expect((await listenerHeard(b)).filter((l) => l.startsWith('JOIN'))).toEqual([]);
    expect(b.server.clients.size).toBe(0); // refused before the user's connection was opened
  });

  it('refuses a key holding a line break, before either connection writes a JOIN', async () => {
    const b = await bridge();
    expect(await run(b.net, 'join', { server: 'net', channel: '#chan', key: 'k\r\nQUIT :bye' })).toMatch(/^The key "k\\r\\nQUIT :bye" holds/);
    await b.server.listener.connect();
    expect((await listenerHeard(b)).filter((l) => /JOIN|QUIT/.test(l))).toEqual([]);
    expect(b.server.clients.size).toBe(0);
  });

  it('joins a channel with a key (both connections)', async () => {
    const b = await bridge();
    await b.server.listener.connect(); // (joining while it connects, the listener writes its JOIN twice)
    expect(await run(b.net, 'join', { server: 'net', channel: '#chan', key: 'k' })).toMatch(/^Joined #chan on net/);
    expect(b.heard.filter((h) => h.line.startsWith('JOIN')).map((h) => h.line)).toEqual(['JOIN #chan k', 'JOIN #chan k']);
  });
});

describe('parseRawCommand: what cmd lets a user send raw', () => {
  it.each<[string, RegExp]>([
    ['@label=x QUIT :bye', /tags/],
    [':uma[m] CAP REQ :-labeled-response', /prefix/],
    ['QUIT :bye', /^QUIT is not allowed through cmd: say "quit"/],
    ['quit', /^QUIT is not allowed/],
    ['NICK other', /say "nick"/],
    ['JOIN #excluded', /say "join"/],
    ['PART #chan', /say "part"/],
    ['PASS secret', /"storepass"/],
    ['USER a 0 * :b', /"username"/],
    ['AUTHENTICATE PLAIN', /"storepass"/],
    ['CAP REQ :-echo-message', /^CAP is not allowed through cmd\./],
    ['MONITOR C', /^MONITOR is not allowed/],
    ['OPER root pw', /^OPER is not allowed/],
    ['KILL bob :x', /^KILL is not allowed/],
    ['WHOIS x\nQUIT', /one line/],
    ['WHOIS x\0', /one line/],
    ['', /Say which command/],
  ])('refuses %j', (line, why) => {
    expect(parseRawCommand(line)).toMatch(why);
  });

  it.each<[string, string]>([
    ['PRIVMSG NickServ :CERT ADD abc', 'PRIVMSG NickServ :CERT ADD abc'],
    ['privmsg NickServ :REGISTER pw', 'PRIVMSG NickServ :REGISTER pw'],
    ['NOTICE bob hi', 'NOTICE bob hi'],
    ['NS  IDENTIFY  pw', 'NS IDENTIFY pw'],
    ['WHOIS alice', 'WHOIS alice'],
    ['MODE uma[m] +i', 'MODE uma[m] +i'],
    ['TOPIC #chan :a new topic', 'TOPIC #chan :a new topic'],
    ['AWAY', 'AWAY'],
    ['AWAY :', 'AWAY :'],
  ])('lets %j through, as %j', (line, sent) => {
    const l = parseRawCommand(line);
    expect(typeof l).toBe('object');
    expect(typeof l === 'object' && l.text).toBe(sent);
  });
});

describe('rawTargetRefusal: where a raw line acts', () => {
  const self = { nick: 'uma[m]', inChannel: (c: string) => c.toLowerCase() === '#chan' };
  const refusal = (line: string): string | undefined => {
    const l = parseRawCommand(line);
    if (typeof l === 'string') throw new Error(l);
    return rawTargetRefusal(l, self);
  };
  it.each<[string, RegExp | undefined]>([
    ['PRIVMSG NickServ :hi', undefined],
    ['NOTICE bob :hi', undefined],
    ['PRIVMSG NickServ@services.x :hi', undefined],
    ['PRIVMSG #chan :hi', /say it in the channel's room/],
    ['PRIVMSG NickServ,#chan :hi', /#chan/],
    ['NOTICE @#chan :hi', /@#chan/],
    ['PRIVMSG $* :hi', /\$\*/],
    ['PRIVMSG &local :hi', /&local/],
    ['MODE Uma[m] +i', undefined],
    ['MODE uma{m} -x', undefined], // the same nick, folded
    ['MODE bob +i', /your own nick/],
    ['MODE #chan +b x!*@*', undefined],
    ['MODE #other +b x!*@*', /not in #other/],
    ['MODE', /your own nick/],
    ['TOPIC #chan :new', undefined],
    ['TOPIC #other :new', /not in #other/],
    ['TOPIC #chan,#other :new', /not in #chan,#other/],
    ['KICK #chan bob :out', undefined],
    ['KICK #other bob', /not in #other/],
    ['INVITE bob #chan', undefined],
    ['INVITE bob #other', /not in #other/],
    ['WHOIS #other', undefined],
  ])('%j', (line, why) => {
    const got = refusal(line);
    if (why) expect(got).toMatch(why); else expect(got).toBeUndefined();
  });
});

describe('cmd, end to end', () => {
  it.each([
    '@x=y QUIT :bye', ':uma[m] CAP REQ :-labeled-response', 'net @x=y QUIT :bye', 'NICK other', 'JOIN #excluded', 'PART #chan',
    'PRIVMSG #chan :hi', 'PRIVMSG NickServ,#chan :hi', 'MODE bob +i', 'TOPIC #chan :x', 'KICK #chan bob',
  ])('refuses %j and the user\'s connection sends nothing for it', async (line) => {
    const b = await bridge();
    const reply = await run(b.net, 'cmd', { line: line.startsWith('net ') ? line : `net ${line}` });
    expect(reply).not.toMatch(/^Sent/);
    expect(reply).not.toBe('no reply');
    const c = b.server.clients.get(USER);
    if (c) { c.setAway('flushed'); await until(() => b.heard.some((h) => h.line === 'AWAY :flushed')); }
    expect(b.heard.filter((h) => h.nick !== 'bridge' && h.line !== 'AWAY :flushed')).toEqual([]);
  });

  it('sends an allowed line, as the server reads it; channel commands only in a channel the user is in through a bridged room', async () => {
    const b = await bridge();
    expect(await run(b.net, 'cmd', { line: 'net PRIVMSG NickServ :CERT ADD' })).toBe('Sent: PRIVMSG NickServ :CERT ADD');
    const nick = b.server.clients.get(USER)!.nick;
    expect(await run(b.net, 'cmd', { line: `net MODE ${nick} +i` })).toBe(`Sent: MODE ${nick} +i`);
    expect(await run(b.net, 'cmd', { line: 'net TOPIC #chan :new' })).toMatch(/not in #chan/);
    expect(await run(b.net, 'join', { server: 'net', channel: '#chan' })).toMatch(/^Joined #chan/);
    expect(b.net.ctx!.portals.forChat(channelChat('net', '#chan'))).toHaveLength(1);
    expect(await run(b.net, 'cmd', { line: 'net TOPIC #chan :new' })).toBe('Sent: TOPIC #chan :new');
    expect(await run(b.net, 'cmd', { line: 'net PRIVMSG #chan :hi' })).toMatch(/say it in the channel's room/);
    await until(() => b.heard.some((h) => h.line === 'TOPIC #chan :new'));
    expect(b.heard.filter((h) => h.nick === nick && !h.line.startsWith('JOIN')).map((h) => h.line))
      .toEqual(['PRIVMSG NickServ :CERT ADD', `MODE ${nick} +i`, 'TOPIC #chan :new']);
  });
});
