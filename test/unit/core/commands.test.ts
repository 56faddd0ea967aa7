import { describe, expect, it } from 'vitest';
import { bindArgs, CommandProcessor, tokenize, type CommandSpec } from '../../../packages/core/src/commands/processor.js';
import { stripReplyFallback } from '../../../packages/core/src/bridge/fromMatrix.js';
import { escapeLocalpart } from '../../../packages/core/src/bridge/ghosts.js';

function processor(perms: Record<string, 'none' | 'user' | 'admin'>, power = 0) {
  const replies: string[] = [];
  const p = new CommandProcessor({
    permission: (u) => perms[u] ?? 'none',
    powerLevel: async () => power,
    adminRoomOwner: (r) => (r === '!admin' ? '@u:hs' : undefined),
    reply: async (_r, t) => { replies.push(t); },
  });
  return { p, replies };
}

const echo: CommandSpec = { name: 'echo', args: ['first', 'second?', '...rest'], help: 'echo', permission: 'user', run: async (i) => JSON.stringify(i.args) };

describe('command parsing', () => {
  it.each([
    ['join #a', ['join', '#a']],
    ['say "hello world" now', ['say', 'hello world', 'now']],
    ['  spaced   out ', ['spaced', 'out']],
    ['q "a \\"b\\" c"', ['q', 'a "b" c']],
  ])('tokenizes %j', (line, words) => { expect(tokenize(line)).toEqual(words); });

  it('binds declared args, optional ones and the rest of the line', () => {
    expect(bindArgs(echo, ['a', 'b', 'c', 'd'], ' a b c   d')).toEqual({ first: 'a', second: 'b', rest: 'c   d' });
    expect(bindArgs(echo, [], '')).toMatch(/Missing <first>/);
  });
});

describe('CommandProcessor', () => {
  it('runs commands without a prefix only in the admin room', async () => {
    const { p, replies } = processor({ '@u:hs': 'user' });
    p.add({ ...echo, name: 'ping', args: [], run: async () => 'pong' });
    expect(await p.tryHandle('!admin', '@u:hs', 'ping')).toBe(true);
    expect(await p.tryHandle('!other', '@u:hs', 'ping')).toBe(false);
    expect(await p.tryHandle('!other', '@u:hs', '!trestle ping')).toBe(true);
    expect(replies).toEqual(['pong', 'pong']);
  });

  it('runs a command once even when its reply cannot be sent, and reports the lost reply', async () => {
    let runs = 0;
    const lost: string[] = [];
    const p = new CommandProcessor({
      permission: () => 'user', powerLevel: async () => 0, adminRoomOwner: () => '@u:hs',
      reply: async () => { throw new Error('M_FORBIDDEN: the bot may not speak here'); },
      replyFailed: (_room, command, err) => { lost.push(`${command}: ${err.message}`); },
    });
    p.add({ ...echo, name: 'once', args: [], run: async () => { runs++; return 'done'; } });
    p.add({ ...echo, name: 'fails', args: [], run: async () => { runs++; throw new Error('no'); } });
    await expect(p.tryHandle('!admin', '@u:hs', 'once')).resolves.toBe(true);
    await expect(p.tryHandle('!admin', '@u:hs', 'fails')).resolves.toBe(true);
    expect(runs).toBe(2);
    expect(lost).toEqual(['once: M_FORBIDDEN: the bot may not speak here', 'fails: M_FORBIDDEN: the bot may not speak here']);
  });

  it('removes a message holding a secret before anything else, refused or not, and says so', async () => {
    const removed: string[] = [];
    const replies: string[] = [];
    let canRemove = true;
    const p = new CommandProcessor({
      permission: () => 'user', powerLevel: async () => 0, adminRoomOwner: (r) => (r === '!admin' ? '@u:hs' : undefined),
      reply: async (_r, t) => { replies.push(t); },
      removeMessage: async (_r, id) => { if (!canRemove) throw new Error('M_FORBIDDEN'); removed.push(id); },
    });
    p.add({ name: 'storepass', args: ['...password'], help: 'x', permission: 'user', adminRoomOnly: true, secret: true, run: async () => 'stored' });
    await p.tryHandle('!admin', '@u:hs', 'storepass hunter2', '$1');
    await p.tryHandle('!room', '@u:hs', '!trestle storepass hunter2', '$2'); // said in the wrong room: refused, and removed all the same
    canRemove = false;
    await p.tryHandle('!admin', '@u:hs', 'storepass hunter2', '$3');
    await p.tryHandle('!admin', '@u:hs', 'ping', '$4'); // not a secret: left alone
    expect(removed).toEqual(['$1', '$2']);
    expect(replies[0]).toBe('stored\n(Your message was removed from the room: it held a secret.)');
    expect(replies[1]).toMatch(/^"storepass" works only in your admin room[^]*removed from the room/);
    expect(replies[2]).toBe('stored\nDelete your message now: it holds a secret, and the bridge could not remove it.');
  });

  it('checks bridge permission and room power, admins bypassing the power check', async () => {
    const { p, replies } = processor({ '@u:hs': 'user', '@a:hs': 'admin' }, 10);
    p.add({ name: 'link', help: 'x', permission: 'user', roomPower: 50, run: async () => 'linked' });
    p.add({ name: 'nuke', help: 'x', permission: 'admin', run: async () => 'boom' });
    await p.tryHandle('!r', '@u:hs', '!trestle link');
    await p.tryHandle('!r', '@a:hs', '!trestle link');
    await p.tryHandle('!r', '@u:hs', '!trestle nuke');
    await p.tryHandle('!r', '@nobody:hs', '!trestle link');
    expect(replies).toEqual([
      '"link" needs power level 50 in this room (you have 10).', 'linked',
      'You are not allowed to use "nuke".', 'You are not allowed to use "link".',
    ]);
  });

  it('routes network commands by prefix and asks when two networks share a name', async () => {
    const { p, replies } = processor({ '@u:hs': 'user' });
    p.add({ name: 'nick', help: 'x', permission: 'user', run: async () => 'irc nick' }, 'irc');
    p.add({ name: 'nick', help: 'x', permission: 'user', run: async () => 'discord nick' }, 'discord');
    p.add({ name: 'whois', help: 'x', permission: 'user', run: async () => 'irc whois' }, 'irc');
    await p.tryHandle('!r', '@u:hs', '!irc nick');
    await p.tryHandle('!admin', '@u:hs', 'discord nick');
    await p.tryHandle('!admin', '@u:hs', 'nick');
    await p.tryHandle('!admin', '@u:hs', 'whois');
    await p.tryHandle('!admin', '@u:hs', 'frobnicate');
    expect(replies).toEqual(['irc nick', 'discord nick', 'Which network? Say "irc nick" or "discord nick".', 'irc whois', 'Unknown command "frobnicate". Say "help" for the list.']);
  });

  it('reports a failing command instead of throwing', async () => {
    const { p, replies } = processor({ '@u:hs': 'user' });
    p.add({ name: 'fail', help: 'x', permission: 'user', run: async () => { throw new Error('nick is banned'); } });
    expect(await p.tryHandle('!admin', '@u:hs', 'fail')).toBe(true);
    expect(replies).toEqual(['"fail" failed: nick is banned']);
  });
});

describe('helpers', () => {
  it('strips reply fallbacks from plain and HTML bodies', () => {
    expect(stripReplyFallback('> <@a:hs> original\n> more\n\nmy answer', '<mx-reply><blockquote>x</blockquote></mx-reply>my <b>answer</b>'))
      .toEqual({ body: 'my answer', formatted: 'my <b>answer</b>' });
    expect(stripReplyFallback('no fallback here')).toEqual({ body: 'no fallback here' });
  });

  it.each([
    ['alice', 'alice'], ['Alice', 'alice'], ['libera_[m]', 'libera_=5bm=5d'], ['ünï', '=c3=bcn=c3=af'], ['a b', 'a=20b'],
  ])('escapes localpart %j', (input, out) => { expect(escapeLocalpart(input)).toBe(out); });
});
