/** The IRC admin commands (in the admin room: `join libera #rust`; elsewhere: `!irc nick newnick`). */
import type { CommandInvocation, NetworkCommand } from '@trestle/core';
import { channelChat } from './ids.js';
import type { IrcNetwork } from './network.js';

/** Raw commands `cmd` refuses: they would break the connection or act beyond the user's own session. */
const REFUSED_RAW = new Set(['PASS', 'USER', 'QUIT', 'CAP', 'AUTHENTICATE', 'SERVICE', 'SERVER', 'SQUIT', 'KILL', 'DIE', 'RESTART', 'OPER', 'REHASH', 'CONNECT']);

export function ircCommands(net: IrcNetwork): NetworkCommand[] {
  const serverArg = (inv: CommandInvocation) => net.server(inv.args['server']!);
  const conn = async (inv: CommandInvocation) => {
    const c = serverArg(inv).clientFor(inv.sender, inv.sender);
    await c.connect();
    return c;
  };
  return [
    {
      name: 'join', args: ['server', 'channel', 'key?'], permission: 'user', help: 'Join an IRC channel and get invited to its portal room',
      run: async (inv) => {
        const server = serverArg(inv);
        const channel = inv.args['channel']!;
        if (!/^[#&+!]/.test(channel)) return `${channel} is not a channel name (they start with #).`;
        const refused = net.channelRefused(server, channel, true);
        if (refused) return `Cannot join: ${refused}.`;
        await server.listener.join(channel, inv.args['key']);
        await (await conn(inv)).join(channel, inv.args['key']);
        const portal = await net.ctx!.openPortal({ chat: channelChat(server.key, channel), name: channel, invite: [inv.sender] });
        return `Joined ${channel} on ${server.displayName}; you are invited to ${portal.roomId}.`;
      },
    },
    {
      name: 'part', args: ['server', 'channel'], permission: 'user', help: 'Leave an IRC channel',
      run: async (inv) => { serverArg(inv).clients.get(inv.sender)?.part(inv.args['channel']!); return `Left ${inv.args['channel']}.`; },
    },
    {
      name: 'nick', args: ['server', 'nick'], permission: 'user', help: 'Change your IRC nick',
      run: async (inv) => {
        const c = await conn(inv);
        const wanted = inv.args['nick']!;
        const result = await new Promise<string>((resolve) => {
          const done = (text: string): void => { clearTimeout(t); c.off('own nick', ok); c.off('nick error', bad); resolve(text); };
          const ok = (nick: string): void => done(`Your nick is now ${nick}.`);
          const bad = (why: string): void => done(`Nick not changed: ${why}.`);
          const t = setTimeout(() => done('The server did not answer the nick change.'), 10_000);
          c.on('own nick', ok);
          c.on('nick error', bad);
          void c.send('RAW', '', `NICK ${wanted.replace(/[\s\r\n\0]/g, '')}`);
        });
        return result;
      },
    },
    {
      name: 'whois', args: ['server', 'nick'], permission: 'user', help: 'Who is an IRC user?',
      run: async (inv) => {
        const server = serverArg(inv);
        const info = await new Promise<Record<string, unknown>>((resolve) => server.listener.client.whois(inv.args['nick']!, resolve));
        if (!info['ident'] && !info['hostname']) return `${inv.args['nick']} is not on ${server.displayName}.`;
        const parts = [`${String(info['nick'])} is ${String(info['ident'])}@${String(info['hostname'])} (${String(info['real_name'] ?? '')})`];
        if (info['channels']) parts.push(`on ${String(info['channels'])}`);
        if (info['account']) parts.push(`logged in as ${String(info['account'])}`);
        return parts.join(', ');
      },
    },
    {
      name: 'storepass', args: ['server', '...password'], permission: 'user', adminRoomOnly: true,
      help: 'Store your IRC password (SASL, encrypted at rest); used from the next connection',
      run: async (inv) => {
        net.store!.setPassword(inv.sender, inv.args['server']!, inv.args['password']!);
        serverArg(inv);
        return 'Password stored (encrypted). Say "reconnect" with the server name to use it now.';
      },
    },
    {
      name: 'removepass', args: ['server'], permission: 'user', help: 'Forget your stored IRC password',
      run: async (inv) => { net.store!.setPassword(inv.sender, inv.args['server']!, null); return 'Password removed.'; },
    },
    {
      name: 'username', args: ['server', 'username'], permission: 'user', help: 'Set your IRC username (ident), used from the next connection',
      run: async (inv) => { net.store!.setUsername(inv.sender, inv.args['server']!, inv.args['username']!); return 'Username set; it applies from your next connection.'; },
    },
    {
      name: 'reconnect', args: ['server'], permission: 'user', help: 'Reconnect your IRC connection',
      run: async (inv) => {
        const server = serverArg(inv);
        const c = server.clients.get(inv.sender);
        if (c) { c.quit('Reconnecting'); server.clients.delete(inv.sender); }
        await (await conn(inv)).connect();
        return `Reconnected to ${server.displayName}.`;
      },
    },
    {
      name: 'quit', args: ['server'], permission: 'user', help: 'Close your IRC connection',
      run: async (inv) => {
        const server = serverArg(inv);
        const c = server.clients.get(inv.sender);
        if (!c) return 'You have no connection there.';
        c.quit('Quit from Matrix');
        server.clients.delete(inv.sender);
        return `Disconnected from ${server.displayName}.`;
      },
    },
    {
      name: 'listrooms', args: ['server'], permission: 'user', help: 'List the IRC channels you are in',
      run: async (inv) => {
        const c = serverArg(inv).clients.get(inv.sender);
        const chans = c ? [...c.channels.keys()] : [];
        return chans.length ? `You are in: ${chans.join(', ')}` : 'You are in no channels there.';
      },
    },
    {
      name: 'cmd', args: ['server', '...line'], permission: 'user', help: 'Send a raw IRC command from your connection',
      run: async (inv) => {
        const line = (inv.args['line'] ?? '').replace(/[\r\n\0]/g, ' ').trim();
        const verb = line.split(' ')[0]?.toUpperCase() ?? '';
        if (!verb) return 'Say which command to send.';
        if (REFUSED_RAW.has(verb)) return `${verb} is not allowed through cmd.`;
        await (await conn(inv)).send('RAW', '', line);
        return `Sent: ${line}`;
      },
    },
  ];
}
