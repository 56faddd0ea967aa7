/**
 * The IRC commands. In the admin room: `nick libera newnick`; in a bridged room the server can be
 * left out and is the one of the room's IRC channel: `!irc nick newnick`.
 *
 * Core binds arguments by position, so a leading optional argument cannot be told apart from the
 * ones after it: the per-server commands declare every argument optional and {@link bindServer}
 * decides, from how many words were given, whether the first one is the server.
 */
import type { CommandInvocation, NetworkCommand } from '@trestle/core';
import { certFingerprint, makeClientCert } from './certs.js';
import { channelChat, ircLower, parseChat } from './ids.js';
import { parseLine, type IrcLine } from './ircline.js';
import { sanitiseUsername } from './nicks.js';
import type { IrcNetwork } from './network.js';
import type { IrcServer } from './server.js';

/**
 * Why a word cannot be sent as one IRC parameter (a nick, a channel, a key), or undefined; `what`
 * names it in the answer ("The nick"). Whitespace would make it several parameters, and a control
 * character (CR, LF, NUL above all) could end the line and start another, on the bridge's own
 * connection too (its whois and join). A comma makes a channel, nick or key a list, each item
 * unchecked (the exclusions and whitelist see one channel); a leading colon makes it a trailing
 * parameter, read differently by the two connections.
 */
export function paramRefusal(what: string, word: string): string | undefined {
  const shown = JSON.stringify(word); // "\n" shown as such, not as a line break in the answer
  if (/[\s\p{Cc}]/u.test(word)) return `${what} ${shown} holds a space or a control character`;
  if (word.includes(',')) return `${what} ${shown} holds a comma (one at a time)`;
  if (word.startsWith(':')) return `${what} ${shown} starts with a colon`;
  return undefined;
}

/**
 * What `cmd` may send: verbs that ask the server something or act only on the user's own session,
 * the services' shortcuts, and the few that act on a target, checked by {@link rawTargetRefusal}.
 * An allowlist, not a list of refusals: a verb a server adds later is refused until someone looks at it.
 */
const RAW_ALLOWED = new Set([
  'PRIVMSG', 'NOTICE', 'MODE', 'TOPIC', 'KICK', 'INVITE', 'AWAY',
  'WHOIS', 'WHOWAS', 'WHO', 'NAMES', 'LIST', 'MOTD', 'INFO', 'VERSION', 'TIME', 'LUSERS', 'ISON', 'USERHOST', 'STATS', 'ADMIN',
  'NS', 'CS', 'MS', 'HS', 'BS', 'NICKSERV', 'CHANSERV', 'MEMOSERV', 'HOSTSERV', 'BOTSERV',
]);

/** Refused verbs with a command of their own, which also keeps the bridge's records (and rules) straight. */
const RAW_INSTEAD: Record<string, string> = {
  NICK: 'say "nick" (the bridge keeps your nick across reconnects)',
  JOIN: 'say "join" (it checks the channel against the bridge\'s rules and invites you to its room)',
  PART: 'say "part" (it takes you out of the channel\'s rooms too)',
  QUIT: 'say "quit" (or "reconnect")',
  PASS: 'say "storepass"',
  AUTHENTICATE: 'say "storepass", or "certfp" for a client certificate',
  USER: 'say "username"',
};

/** A line `cmd` may send: its command and params, and `text`, the line as the server will read it. */
export type RawCommand = IrcLine & { text: string };

/**
 * Parse what a user gave `cmd` (the server already taken off), or say why it is refused: more than one
 * line, tags or a prefix (a client sends neither: `@label=x QUIT` or `:me CAP REQ ...` would hide the
 * verb from a check of the first word), or a verb not in {@link RAW_ALLOWED}. The line is written
 * again from what was parsed, so the server reads exactly what was checked.
 */
export function parseRawCommand(input: string): RawCommand | string {
  if (/[\r\n\0]/.test(input)) return 'cmd sends one line: it cannot hold a line break or NUL.';
  const line = input.trim();
  if (line.startsWith('@')) return 'cmd sends no tags (a line starting with @).';
  if (line.startsWith(':')) return 'cmd sends no prefix (a line starting with :): the server knows who you are.';
  const l = parseLine(line);
  if (!l) return 'Say which command to send.';
  if (!RAW_ALLOWED.has(l.command)) {
    const instead = RAW_INSTEAD[l.command];
    return `${l.command} is not allowed through cmd${instead ? `: ${instead}` : ''}.`;
  }
  // parseLine takes the last param as trailing exactly when ' :' is in the line
  const trailing = line.includes(' :');
  const middle = trailing ? l.params.slice(0, -1) : l.params;
  const text = [l.command, ...middle].join(' ') + (trailing ? ` :${l.params[l.params.length - 1]!}` : '');
  return { ...l, text };
}

/** Could this message target be anything but one nick: a channel, a channel's ops (`@#c`), a server mask (`$*`), a list? */
const notOneNick = (target: string): boolean => target === '' || /^[#&+!@%~$*]/.test(target) || target.includes(',');

/**
 * Why `cmd` will not send an allowed line to where it goes, or undefined. Messages go to nicks and
 * services only: a message to a channel would reach IRC but never the channel's room (the bridge
 * does not bring its users' own lines back), so it is refused and said in the room instead. MODE
 * goes to the user's own nick, or like TOPIC, KICK and INVITE to a channel `self.inChannel`: one
 * the user's connection is in through a bridged room, so one that passed the bridge's rules.
 */
export function rawTargetRefusal(l: IrcLine, self: { nick: string; inChannel(channel: string): boolean }): string | undefined {
  const notIn = (channel: string): string | undefined =>
    self.inChannel(channel) ? undefined : `${l.command} works through cmd only in a channel you are in through a bridged room, and you are not in ${channel}.`;
  switch (l.command) {
    case 'PRIVMSG': case 'NOTICE': {
      const bad = (l.params[0] ?? '').split(',').find(notOneNick);
      return bad === undefined ? undefined
        : `${l.command} goes through cmd only to nicks and services, not to ${bad || 'nobody'}: to speak in a channel, say it in the channel's room (a raw message would never reach the room).`;
    }
    case 'MODE': {
      const target = l.params[0] ?? '';
      if (/^[#&+!]/.test(target)) return notIn(target);
      return ircLower(target) === ircLower(self.nick) ? undefined : `MODE works through cmd only on your own nick (${self.nick}) or a channel you are in.`;
    }
    case 'TOPIC': case 'KICK': return notIn(l.params[0] ?? '');
    case 'INVITE': return l.params[1] === undefined ? undefined : notIn(l.params[1]);
    default: return undefined;
  }
}

/** What `certfp` says: the fingerprint, and how to tie it to the account. */
export function certfpAnswer(server: Pick<IrcServer, 'key' | 'displayName' | 'usesTls'>, fingerprint: string, made: boolean): string {
  const lines = [
    `${made ? 'Made a client certificate' : 'Your client certificate'} for ${server.displayName}; its SHA-256 fingerprint is ${fingerprint}`,
    `The private key stays with the bridge (encrypted). To log in with it (SASL EXTERNAL): while logged in to your account, ` +
      `say "cmd ${server.key} PRIVMSG NickServ :CERT ADD ${fingerprint}", then "reconnect ${server.key}".`,
    `Where services take another kind of fingerprint, "reconnect ${server.key}" first (your connection then presents the certificate) ` +
      `and say "cmd ${server.key} PRIVMSG NickServ :CERT ADD" without one.`,
  ];
  if (!server.usesTls()) lines.push(`This server is not configured with TLS, so the certificate cannot be presented there until it is.`);
  return lines.join('\n');
}

/** A command's answer when something the user asked for cannot be done (a reply, not a crash). */
class Refusal extends Error {}

/**
 * The servers a command may mean when none is named: those of the IRC channels the room is
 * linked to, or the only configured server of a bridge that has just one.
 */
function implicitServers(net: IrcNetwork, roomId: string): string[] {
  const keys = new Set<string>();
  for (const p of net.ctx?.portals.forRoom(roomId) ?? []) {
    const c = parseChat(p.remoteChat);
    if (c) keys.add(c.server);
  }
  if (keys.size === 0 && net.servers.size === 1) return [...net.servers.keys()];
  return [...keys];
}

/**
 * Bind a per-server command's words: `names` are its arguments after the server, `required` how
 * many of them must be given. With one word fewer than `names` would take and a server being one
 * of the room's, the server comes from the room; otherwise the first word is the server.
 */
export function bindServer(
  words: readonly (string | undefined)[], names: readonly string[], required: number, roomServers: readonly string[], known: (key: string) => boolean,
): { server: string; args: Record<string, string | undefined> } | string {
  const given = words.filter((w): w is string => w !== undefined);
  const [first, ...rest] = given;
  const usage = `[server] ${names.map((n, i) => (i < required ? `<${n}>` : `[${n}]`)).join(' ')}`.trim();
  let server: string | undefined;
  let values: string[];
  if (first !== undefined && known(first) && rest.length >= required) { server = first; values = rest; }
  else if (roomServers.length === 1) { server = roomServers[0]; values = given; }
  else if (roomServers.length > 1) return `This room is linked to channels on several IRC servers (${roomServers.join(', ')}): say which one first. Usage: ${usage}`;
  else if (first !== undefined && !known(first)) return `Unknown IRC server "${first}". Usage: ${usage}`;
  else { server = first; values = rest; }
  if (!server) return `Say which IRC server. Usage: ${usage}`;
  if (values.length < required) return `Missing <${names[values.length]}>. Usage: ${usage}`;
  if (values.length > names.length) return `Too many arguments. Usage: ${usage}`;
  return { server, args: Object.fromEntries(names.map((n, i) => [n, values[i]])) };
}

export function ircCommands(net: IrcNetwork): NetworkCommand[] {
  const known = (key: string): boolean => net.servers.has(key);

  /** A per-server command: `[server] <args...>`, the server optional in a bridged room. */
  const perServer = (spec: {
    name: string; help: string; args: string[]; required: number; adminRoomOnly?: boolean;
    run: (inv: CommandInvocation, server: IrcServer, args: Record<string, string | undefined>) => Promise<string | void>;
  }): NetworkCommand => ({
    name: spec.name, help: spec.help, permission: 'user', ...(spec.adminRoomOnly ? { adminRoomOnly: true } : {}),
    // all optional for core's binder; bindServer checks what is required
    args: ['server?', ...spec.args.map((a) => `${a}?`)],
    run: async (inv) => {
      const words = ['server', ...spec.args].map((a) => inv.args[a]);
      const bound = bindServer(words, spec.args, spec.required, implicitServers(net, inv.roomId), known);
      if (typeof bound === 'string') return bound;
      try {
        return await spec.run(inv, net.server(bound.server), bound.args);
      } catch (err) {
        if (err instanceof Refusal) return err.message;
        throw err;
      }
    },
  });

  const conn = async (inv: CommandInvocation, server: IrcServer) => {
    if (server.excluded(inv.sender)) throw new Refusal(`Your Matrix account is excluded from ${server.displayName} by the bridge's configuration.`);
    if (server.relayed(inv.sender)) throw new Refusal(`You are relayed on ${server.displayName} (the bridge's relay.users): your messages go out through its relay connection, and you have no connection of your own.`);
    // a connection a command opens (before any message has) is named like one a message opens
    const c = server.clientFor(inv.sender, await inv.senderName());
    await c.connect();
    return c;
  };

  return [
    perServer({
      name: 'join', args: ['channel', 'key'], required: 1, help: 'Join an IRC channel and get invited to its portal room',
      run: async (inv, server, a) => {
        const channel = a['channel']!;
        // before any check of the channel: the bridge's rules must see exactly the one it joins
        const bad = paramRefusal('The channel', channel) ?? (a['key'] === undefined ? undefined : paramRefusal('The key', a['key']));
        if (bad) return `${bad}.`;
        if (!/^[#&+!]/.test(channel)) return `${channel} is not a channel name (they start with #).`;
        const refused = net.channelRefused(server, channel, true);
        if (refused) return `Cannot join: ${refused}.`;
        // the user's own join first: if IRC refuses them (banned, invite-only, key), nothing else happens
        await (await conn(inv, server)).join(channel, a['key']).catch((err: Error) => { throw new Refusal(`Cannot join ${channel}: ${err.message.replace(/^cannot join \S+: /, '')}.`); });
        await server.listener.join(channel, a['key']);
        const portal = await net.ctx!.openPortal({ chat: channelChat(server.key, channel), name: channel, invite: [inv.sender] });
        return `Joined ${channel} on ${server.displayName}; you are invited to ${portal.roomId}.`;
      },
    }),
    perServer({
      name: 'part', args: ['channel'], required: 1, help: 'Leave an IRC channel and the Matrix rooms bridged to it',
      run: async (inv, server, a) => {
        const channel = a['channel']!;
        const bad = paramRefusal('The channel', channel);
        if (bad) return `${bad}.`;
        const c = server.clients.get(inv.sender);
        const onIrc = c?.channels.has(ircLower(channel)) === true;
        if (onIrc) c!.part(channel, 'Left from Matrix');
        // the rooms bridged to the channel follow
        const { left, kept } = await server.outOfRooms(inv.sender, channel, `Left ${channel} on ${server.displayName}`);
        if (!onIrc && left.length + kept.length === 0) return `You are not in ${channel} on ${server.displayName}.`;
        const out = [`Left ${channel} on ${server.displayName}${left.length ? ` and its room${left.length > 1 ? 's' : ''} ${left.join(', ')}` : ''}.`];
        if (kept.length) out.push(`I could not take you out of ${kept.join(', ')} (my power level is too low there), so your next message there joins ${channel} again.`);
        return out.join(' ');
      },
    }),
    perServer({
      name: 'nick', args: ['nick'], required: 1, help: 'Change your IRC nick',
      run: async (inv, server, a) => {
        const wanted = a['nick']!;
        const bad = paramRefusal('The nick', wanted);
        if (bad) return `${bad}.`;
        // a bridged user away now (an idle connection closed) keeps their nick: nobody else may speak as them
        if (net.store!.nickOwner(server.key, wanted, inv.sender)) return `Nick not changed: ${wanted} is another Matrix user's nick on ${server.displayName}.`;
        const c = await conn(inv, server);
        if (c.nick === wanted) { server.nickChosen(inv.sender, c.nick); return `Your nick is already ${wanted}.`; }
        const r = await server.changeNick(c, wanted);
        if ('why' in r) return `Nick not changed: ${r.why}.`;
        server.nickChosen(inv.sender, r.nick); // a nick chosen here no longer follows the display name
        return `Your nick on ${server.displayName} is now ${r.nick}.`;
      },
    }),
    perServer({
      name: 'whois', args: ['nick'], required: 1, help: 'Who is an IRC user?',
      run: async (_inv, server, a) => {
        const nick = a['nick']!;
        const bad = paramRefusal('The nick', nick);
        if (bad) return `${bad}.`;
        // asked by the bridge's own connection, which is up whether or not the user has one
        const info = await server.listener.whois(nick).catch((err: Error) => { throw new Refusal(`Could not look up ${nick} on ${server.displayName}: ${err.message}.`); });
        if (!info['ident'] && !info['hostname']) return `${nick} is not on ${server.displayName}.`;
        const parts = [`${String(info['nick'])} is ${String(info['ident'])}@${String(info['hostname'])} (${String(info['real_name'] ?? '')})`];
        if (info['channels']) parts.push(`on ${String(info['channels'])}`);
        if (info['account']) parts.push(`logged in as ${String(info['account'])}`);
        return parts.join(', ');
      },
    }),
    {
      // the password is the rest of the line (it may hold spaces), so the server is never left out here
      name: 'storepass', args: ['server', '...password'], permission: 'user', adminRoomOnly: true, secret: true,
      help: 'Store your IRC password (SASL, encrypted at rest); used from the next connection',
      run: async (inv) => {
        // not net.server(): its error would repeat the first word, which may be the password's (no server given)
        const server = net.servers.get(inv.args['server']!);
        if (!server) return `The first word must name the IRC server (${[...net.servers.keys()].join(', ')}), then the password.`;
        net.store!.setPassword(inv.sender, server.key, inv.args['password']!);
        server.passwordChanged(inv.sender);
        const clear = server.usesTls() ? '' : ` Careful: ${server.displayName} is reached without TLS, so the password crosses the network readable by anyone on the way.`;
        return `Password stored (encrypted). Say "reconnect ${server.key}" to use it now.${clear}`;
      },
    },
    perServer({
      name: 'removepass', args: [], required: 0, help: 'Forget your stored IRC password',
      run: async (inv, server) => {
        net.store!.setPassword(inv.sender, server.key, null);
        server.passwordChanged(inv.sender);
        return net.store!.certificate(inv.sender, server.key) === undefined ? 'Password removed.'
          : 'Password removed. Your client certificate stays ("removecert" forgets it).';
      },
    }),
    perServer({
      name: 'certfp', args: [], required: 0, adminRoomOnly: true,
      help: 'Make (or show) your client certificate for SASL EXTERNAL, and its fingerprint to add to your account',
      run: async (inv, server) => {
        let pem = net.store!.certificate(inv.sender, server.key);
        const made = pem === undefined;
        if (pem === undefined) {
          // the key is made here and never leaves the bridge: only the fingerprint goes to Matrix
          const cert = makeClientCert(`${inv.sender} on ${server.key}`);
          net.store!.setCertificate(inv.sender, server.key, cert);
          pem = cert.cert;
        }
        return certfpAnswer(server, certFingerprint(pem), made);
      },
    }),
    perServer({
      name: 'removecert', args: [], required: 0, adminRoomOnly: true, help: 'Forget your client certificate (a stored password stays)',
      run: async (inv, server) => {
        if (net.store!.certificate(inv.sender, server.key) === undefined) return `You have no client certificate for ${server.displayName}.`;
        net.store!.setCertificate(inv.sender, server.key, null);
        return `Client certificate for ${server.displayName} forgotten; it is not presented from your next connection ("reconnect" to drop it now). ` +
          'Remove its fingerprint from your account too (NickServ CERT DEL).';
      },
    }),
    perServer({
      name: 'username', args: ['username'], required: 1, help: 'Set your IRC username (ident), used from the next connection',
      run: async (inv, server, a) => {
        // what USER sends and the ident server answers must be one valid username: `:`, `@` or `!` in it would break both
        const wanted = a['username']!;
        const username = sanitiseUsername(wanted);
        net.store!.setUsername(inv.sender, server.key, username);
        return username === wanted ? 'Username set; it applies from your next connection.'
          : `Username set to ${username} (an IRC username is at most 10 of a-z, 0-9, _ . and -); it applies from your next connection.`;
      },
    }),
    perServer({
      name: 'reconnect', args: [], required: 0, help: 'Reconnect your IRC connection',
      run: async (inv, server) => {
        // the new connection goes back into the channels the old one was in (with their keys)
        const channels = [...(server.clients.get(inv.sender)?.channels ?? [])];
        server.closeClient(inv.sender, 'Reconnecting');
        const c = await conn(inv, server);
        await c.connect();
        const failed: string[] = [];
        await Promise.all(channels.map(([channel, key]) => c.join(channel, key).catch((err: Error) => { failed.push(`${channel} (${err.message})`); })));
        return `Reconnected to ${server.displayName}${channels.length ? `, in ${channels.length - failed.length} channel${channels.length - failed.length === 1 ? '' : 's'}` : ''}.` +
          (failed.length ? ` Could not rejoin ${failed.join(', ')}.` : '');
      },
    }),
    perServer({
      name: 'quit', args: [], required: 0, help: 'Close your IRC connection',
      run: async (inv, server) => (server.closeClient(inv.sender, 'Quit from Matrix') ? `Disconnected from ${server.displayName}.` : 'You have no connection there.'),
    }),
    perServer({
      name: 'listrooms', args: [], required: 0, help: 'List the IRC channels you are in',
      run: async (inv, server) => {
        const c = server.clients.get(inv.sender);
        const chans = c ? [...c.channels.keys()] : [];
        return chans.length ? `You are in: ${chans.join(', ')}` : 'You are in no channels there.';
      },
    }),
    {
      name: 'cmd', args: ['...line'], permission: 'user', help: 'Send a raw IRC command from your connection: cmd [server] <line>',
      run: async (inv) => {
        let line = (inv.args['line'] ?? '').trim();
        const first = line.split(' ', 1)[0]!;
        const roomServers = implicitServers(net, inv.roomId);
        // the server is the first word when it names one (and more follows), else the room's
        let key: string | undefined;
        if (known(first) && line.length > first.length) { key = first; line = line.slice(first.length).trim(); }
        else if (roomServers.length === 1) key = roomServers[0];
        if (!key) return roomServers.length > 1 ? `Say which IRC server: this room is linked to ${roomServers.join(', ')}.` : 'Say which IRC server, then the command.';
        const raw = parseRawCommand(line);
        if (typeof raw === 'string') return raw;
        const server = net.server(key);
        const c = await conn(inv, server);
        const why = rawTargetRefusal(raw, {
          nick: c.nick,
          inChannel: (ch) => c.channels.has(ircLower(ch)) && (net.ctx?.portals.forChat(channelChat(server.key, ch)).length ?? 0) > 0,
        });
        if (why) return why;
        await c.send('RAW', '', raw.text);
        return `Sent: ${raw.text}`;
      },
    },
    {
      name: 'linelimit', args: ['lines?'], permission: 'user', roomPower: 50,
      help: `How many IRC lines a message from this room may take before it is uploaded and linked instead: linelimit [1-${MAX_ROOM_LINE_LIMIT}|default]`,
      run: async (inv) => {
        const servers = [...new Set((net.ctx?.portals.forRoom(inv.roomId) ?? []).map((p) => parseChat(p.remoteChat)?.server).filter((k): k is string => !!k))];
        if (servers.length === 0) return 'This room is not bridged to IRC.';
        const current = net.roomLineLimit(inv.roomId);
        const word = inv.args['lines']?.trim().toLowerCase();
        const defaults = servers.map((k) => `${net.server(k).cfg.lineLimit} on ${net.server(k).displayName}`).join(', ');
        if (!word) return current === undefined ? `This room uses the server's line limit (${defaults}).` : `This room's line limit is ${current}.`;
        if (word === 'default') {
          net.setRoomLineLimit(inv.roomId, undefined);
          return `This room uses the server's line limit again (${defaults}).`;
        }
        const n = Number(word);
        if (!Number.isInteger(n) || n < 1 || n > MAX_ROOM_LINE_LIMIT) return `The line limit is a whole number from 1 to ${MAX_ROOM_LINE_LIMIT}, or "default".`;
        net.setRoomLineLimit(inv.roomId, n);
        return `Messages from this room longer than ${n} IRC line${n === 1 ? '' : 's'} are now uploaded and linked.`;
      },
    },
  ];
}

/** The most IRC lines a room may let one message take (more would flood the channel). */
export const MAX_ROOM_LINE_LIMIT = 50;
