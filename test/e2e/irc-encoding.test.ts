/**
 * IRC clients that still send a legacy 8-bit encoding: their lines are not UTF-8, and the bridge
 * reads them with the server's `encodingFallback` (windows-1252 by default) instead of showing
 * U+FFFD. ergo refuses lines that are not UTF-8 by default (`server.enforce-utf8`), as most
 * networks do not: the suite runs it without that rule and restores it at the end. The IRC side is
 * a plain socket, as an old client is: it writes the bytes it likes.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrestleBridge } from '@trestle/core';
import type { MatrixUser } from '../harness/matrix-user.js';
import { until } from './env.js';
import { body, ghost, ircPort, IrcUsers, plumbedRoom, restartErgo, startSuite } from './irc-env.js';

let bridge: TrestleBridge;
let finn: MatrixUser;
let botId: string;
const users = new IrcUsers();
const sockets: Socket[] = [];

/** An IRC client on a bare socket: registered and in `channel`; `send` writes raw bytes as one line. */
async function legacyClient(nick: string, channel: string): Promise<{ send: (...parts: (string | number[])[]) => void; seen: () => string }> {
  const sock = connect({ host: '127.0.0.1', port: ircPort });
  sockets.push(sock);
  let text = '';
  sock.on('data', (d: Buffer) => {
    text += d.toString('latin1');
    for (const m of text.matchAll(/^PING (.*)\r?$/gm)) sock.write(`PONG ${m[1]}\r\n`);
    text = text.replace(/^PING .*\r?\n/gm, '');
  });
  sock.write(`NICK ${nick}\r\nUSER ${nick} 0 * :legacy client\r\n`);
  await until(async () => / 001 /.test(text), `${nick} to register`);
  sock.write(`JOIN ${channel}\r\n`);
  await until(async () => new RegExp(`JOIN :?${channel}`, 'i').test(text), `${nick} to join ${channel}`);
  return {
    send: (...parts) => sock.write(Buffer.concat([...parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))), Buffer.from('\r\n')])),
    seen: () => text,
  };
}

beforeAll(async () => {
  restartErgo('server.enforce-utf8=false');
  ({ bridge, botId, user: finn } = await startSuite('ircfinn', 'Finn'));
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  users.quitAll();
  await bridge?.stop();
  restartErgo(); // the other suites' ergo
});

describe('IRC bridge: lines that are not UTF-8', () => {
  it('reads a legacy client\'s channel lines and private messages with the fallback encoding; UTF-8 stays UTF-8', async () => {
    const roomId = await plumbedRoom(finn, botId, '#latin');
    const old = await legacyClient('oldclient', '#latin');
    old.send('PRIVMSG #latin :caf', [0xe9], ' cr', [0xe8], 'me br', [0xfb], 'l', [0xe9], 'e ', [0x80], '5 ', [0x93], 'ok', [0x94]);
    expect((await finn.waitForEvent(roomId, (e) => body(e).startsWith('caf'))).content['body']).toBe('café crème brûlée €5 “ok”');
    expect((await finn.timeline(roomId)).find((e) => body(e).startsWith('caf'))?.sender).toBe(ghost('oldclient'));
    // a modern client's UTF-8, through the same listener, untouched
    const modern = await users.add('newclient', ['#latin']);
    modern.say('#latin', 'naïve — ☕');
    await finn.waitForEvent(roomId, (e) => body(e) === 'naïve — ☕');

    // Finn's own IRC connection (opened by his message) reads what it is sent the same way: a private message
    await finn.sendText(roomId, 'hello from finn');
    await until(async () => old.seen().includes('hello from finn'), 'Finn\'s line to reach the legacy client');
    const finnNick = /:(\S+?)!\S+ PRIVMSG #latin :hello from finn/.exec(old.seen())![1]!;
    old.send(`PRIVMSG ${finnNick} :gr`, [0xfc], [0xdf], 'e');
    const dm = await until(() => bridge.portals.all().find((p) => p.kind === 'dm' && p.remoteChat === `test/pm/${finn.userId}/oldclient`)?.roomId, 'the DM room');
    await finn.join(dm);
    expect((await finn.waitForEvent(dm, (e) => body(e).startsWith('gr'))).content['body']).toBe('grüße');
  });
});
