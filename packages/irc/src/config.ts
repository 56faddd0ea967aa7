/** The `networks.irc` config section: its schema is the single source of truth (types, sample, validation). */
import { networkSection, presenceRefreshSecondsSchema } from '@trestle/core';
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseBlock } from './addresses.js';
import { knownEncoding } from './convert/encoding.js';

/**
 * Floors of the reconnect waits: not tuning advice, a guard against a reconnect loop (a first wait of
 * 0 stays 0 however often it doubles). Core's delivery waits have the same floors.
 */
const MIN_INITIAL_DELAY_MS = 50;
const MIN_MAX_DELAY_MS = 1000;

const channelName = z.string().regex(/^[#&+!][^\s,\x07]{1,199}$/, { error: 'must be a channel name such as #rust' });
/** A regular expression matched against a whole Matrix user id. */
const userIdPattern = z.string().min(1).refine((r) => { try { new RegExp(r); return true; } catch { return false; } }, { error: 'must be a valid regular expression' });

export const ircServerSchema = z.strictObject({
  host: z.string().min(1).meta({ examples: ['irc.libera.chat'] }).describe('Host name or address of the IRC server.'),
  port: z.int().min(1).max(65535).default(6667).describe('Port of the IRC server.'),
  tls: z.boolean().default(false).describe('Connect with TLS. Needed for client certificates (`certfp`, SASL EXTERNAL).'),
  tlsCa: z.string().min(1).optional().meta({ examples: ['/etc/trestle/irc-ca.pem'] })
    .describe('With tls (or the TLS a server\'s STS policy asks for): a PEM file of the certificates to trust for this ' +
      'server instead of the system\'s certificate authorities: the server\'s own self-signed certificate, or the authority ' +
      'that issued it (a private network, a test server). The server\'s certificate must still name the host. Unset: the system\'s authorities. ' +
      'A relative path is resolved against the working directory the bridge is started in.'),
  sts: z.boolean().default(true)
    .describe('Obey the server\'s IRCv3 STS policy: a plaintext connection the server asks to use TLS opens again with TLS ' +
      'on the port it names, and a policy heard over TLS is stored, so that until it runs out every connection to this host ' +
      'uses TLS and none falls back to plaintext. false ignores STS: only for a server whose certificate cannot be verified.'),
  name: z.string().optional().describe('Human name of the network, shown in room names and help (defaults to the key).'),
  password: z.string().optional().describe('Server password (PASS) sent by every connection, if the server needs one.'),
  nickserv: z.strictObject({
    identify: z.enum(['fallback', 'only', 'off']).default('fallback')
      .describe('Logging in with a password stored by `storepass` through NickServ: `fallback` = when SASL is not offered or fails, ' +
        '`only` = never SASL, always `IDENTIFY` after connecting (for servers whose SASL does not work for you), `off` = SASL only.'),
    nick: z.string().regex(/^[^\s:]+$/).default('NickServ').describe('The nick of the services bot to IDENTIFY to.'),
  }).prefault({}).describe('NickServ IDENTIFY for Matrix users with a stored password.'),
  botNick: z.string().default('trestle').describe("Nick of the bridge's own listening connection, which joins every bridged channel."),
  botPassword: z.string().min(1).optional()
    .describe("Password of the account named like botNick, for the bridge's own connection to log in with (SASL PLAIN): for networks " +
      'that let only logged-in users in, or to hold the nick. Register the account first (e.g. `/msg NickServ REGISTER` as botNick).'),
  nickTemplate: z.string().default('$DISPLAY[m]')
    .describe('Nick of a Matrix user on IRC. $DISPLAY = display name, $LOCALPART = user id localpart, $USERID = full id.'),
  ghostDisplayName: z.string().min(1).max(200).refine((t) => t.includes('$NICK'), { error: 'must hold $NICK' }).default('$NICK')
    .meta({ examples: ['$NICK (IRC)'] })
    .describe('Display name of IRC users\' ghosts on Matrix: $NICK = their nick, $SERVER = the server\'s name (`name`, else its key), ' +
      'e.g. `$NICK (IRC)`. Ghosts take a changed template at their next message.'),
  encodingFallback: z.string().refine(knownEncoding, { error: 'is not an encoding this bridge knows (try windows-1252, iso-8859-15, koi8-r, windows-1251)' })
    .default('windows-1252')
    .describe('How lines that are not valid UTF-8 are read: an encoding label such as `windows-1252` (a superset of Latin-1, ' +
      'which older western clients still send), `iso-8859-15`, `koi8-r` or `windows-1251`. Valid UTF-8 is always read as UTF-8.'),
  usernameTemplate: z.string().default('$LOCALPART').describe('IRC username (ident) of a Matrix user.'),
  realnameTemplate: z.string().default('$USERID').describe('IRC realname (gecos) of a Matrix user.'),
  excludedUsers: z.array(z.strictObject({
    regex: userIdPattern.describe('Matched against the whole Matrix user id, e.g. `@telegram_.*:example\\.org`.'),
    kickReason: z.string().optional().describe('If set, such users are kicked from this server\'s bridged rooms when they join, with this reason.'),
  })).default([])
    .describe('Matrix users who never appear on this IRC server: no connection is opened for them and nothing they do in a ' +
      'bridged room is sent (e.g. another bridge\'s puppets, bots). Their IRC admin commands are refused. Each rule: `regex`, ' +
      'matched against the whole user id; `kickReason`, optional: such users are also kicked from the bridged rooms when they join.'),
  relay: z.strictObject({
    users: z.array(userIdPattern).default([])
      .describe('Matrix users (regular expressions on the whole user id; `.*` for everyone) whose messages go out through one ' +
        'shared connection of the bridge, as `<Name> text`, instead of a connection of their own: for a server that allows few ' +
        'connections from one address, or for other bridges\' puppets. A relayed user is not in the channel themselves (no ' +
        'join, part, nick, typing or private messages of theirs on IRC). excludedUsers comes first.'),
    nick: z.string().regex(/^[A-Za-z[\]\\`_^{|}][A-Za-z0-9[\]\\`_^{|}-]*$/, { error: 'must be a valid IRC nick' }).default('MatrixRelay')
      .describe('Nick of the shared relay connection.'),
  }).prefault({}).describe('Relaying some or all Matrix users through one connection (as Heisenbridge\'s and mautrix\'s relay modes do).'),
  addressBlock: z.string().superRefine((text, ctx) => {
    try { parseBlock(text); } catch (err) { ctx.addIssue({ code: 'custom', message: (err as Error).message }); }
  }).optional().meta({ examples: ['2001:db8:1234::/64'] })
    .describe('A block of addresses (CIDR, IPv6 or IPv4) routed to this host: each Matrix user\'s connection (and the relay ' +
      'connection) gets an address of its own from it as its source address, kept across reconnects and restarts, so the ' +
      'network can limit and ban Matrix users one by one (as the reference bridge\'s `ipv6.prefix`). The bridge\'s own ' +
      'listening connection keeps the host\'s default address. The network must route the block to this host, and Linux ' +
      'must take it as local: `ip -6 route add local 2001:db8:1234::/64 dev lo` and, for IPv6 only, ' +
      '`sysctl -w net.ipv6.ip_nonlocal_bind=1` (IPv4: `ip route add local 192.0.2.0/24 dev lo`); all of 127.0.0.0/8 ' +
      'is local already (tests, one-host set-ups). An IPv4 block\'s network and broadcast addresses are not used. A ' +
      'user keeps their address while the block has a free one; once it is used up, a new user takes the least recently ' +
      'used address of a user not connected at the time (who gets another at their next connection), and when every ' +
      'address is held by a connected user, the new one is told and not connected. With `ident`, leave `ident.bindAddress` unset (or `::`/`0.0.0.0`): the server asks ident at the ' +
      'connection\'s own address.'),
  userModes: z.string().regex(/^\+[a-zA-Z]+$/, { error: 'must be a + and user mode letters, e.g. +R' }).optional()
    .meta({ examples: ['+R'] })
    .describe('User modes each Matrix user\'s connection (and the relay connection) sets on itself once registered, e.g. ' +
      '`+R` (ergo, Libera: only registered users may send it private messages) or `+i` (invisible). Modes the server does ' +
      'not know are refused by it and logged.'),
  maxClients: z.int().min(1).default(1000).describe('Most IRC connections for Matrix users; the least recently active is closed past it.'),
  idleTimeoutMinutes: z.int().min(0).default(0).describe('Close a Matrix user\'s IRC connection after this long without activity (0 = never).'),
  idleInPlumbedRooms: z.boolean().default(false).describe('Let idleTimeoutMinutes close connections in the channels of plumbed rooms too (off: there the ' +
    'IRC side counts on seeing the Matrix users, as in the channel before it was bridged).'),
  lineLimit: z.int().min(1).default(3).describe('A Matrix message longer than this many IRC lines is uploaded and linked instead. A room\'s moderators can set their own with `!irc linelimit`.'),
  replies: z.strictObject({
    shortWithinSeconds: z.int().min(0).default(300).describe('A Matrix reply to a message younger than this, and said fewer than shortWithinLines lines ago, is sent as `nick: text`.'),
    shortWithinLines: z.int().min(0).default(10).describe('A Matrix reply to a message said this many lines ago or more (or older than shortWithinSeconds) may quote it: `<nick> "quote…" <- text`.'),
    quoteLength: z.int().min(8).max(200).default(40).describe('Most characters of the quoted message.'),
  }).prefault({}).describe('Matrix replies on IRC. An old message is quoted only when nobody joined the channel since it was said (a later joiner may not be meant to read it); otherwise, and for messages the bridge did not see, the reply is `nick: text`.'),
  presence: z.boolean().default(false)
    .describe('Show IRC users\' away status as the Matrix presence of their ghosts: in a bridged channel and not away = online, ' +
      'away = unavailable with the away message as the status message, gone from every bridged channel = offline. Uses IRCv3 ' +
      'away-notify where the server offers it. Costs a request to the homeserver per ghost that is not offline every ' +
      'presenceRefreshSeconds; needs presence enabled on the homeserver.'),
  presenceRefreshSeconds: presenceRefreshSecondsSchema,
  awayFromPresence: z.boolean().default(false)
    .describe('The other way: a Matrix user whose presence turns unavailable or offline is marked AWAY on IRC (with their ' +
      'status message, else "Away"), and back when they are online again, so IRC users who message them learn they may ' +
      'not answer soon. Only connections already open (presence never opens one); needs presence enabled on the homeserver.'),
  linkApproval: z.strictObject({
    enabled: z.boolean().default(false)
      .describe('Link a room to a channel (the `link` command, the provisioning API) only once one of the channel\'s operators ' +
        'agrees: the bridge asks them by NOTICE, and the first to answer it "yes" or "no" decides (as the reference bridge asks ' +
        'for its provisioning API; networks such as Libera.Chat want a channel\'s operators to agree to a bridge). A bridge ' +
        'admin links without asking, and so does a Matrix user whose own IRC connection is an operator there; so does a static mapping. Requests are stored: after a restart they wait for the rest of their time.'),
    timeoutSeconds: z.int().min(10).default(300).describe('How long a request waits for an operator\'s answer.'),
  }).prefault({}).describe('Channel operators\' consent to plumbing.'),
  history: z.strictObject({
    enabled: z.boolean().default(true)
      .describe('When the bridge\'s own connection rejoins a bridged channel (the bridge restarted, or its connection was lost), ' +
        'fetch what was said there while it was away (IRCv3 draft/chathistory, where the server offers it) and deliver it to ' +
        'the room, with its original times. A channel joined for the first time fetches nothing.'),
    limit: z.int().min(1).default(100)
      .describe('Most messages fetched per channel on a rejoin (joins, parts and quits count too, as the server counts them), ' +
        'asked for in pages when the server gives fewer per request. When more were said, the room is told that later ones are missing.'),
  }).prefault({}).describe('Messages said on IRC while the bridge was away.'),
  dynamicChannels: z.strictObject({
    enabled: z.boolean().default(true).describe('Let Matrix users open portal rooms by joining #irc_<server>_<#channel> aliases.'),
    whitelist: z.array(channelName).default([]).describe('If not empty, only these channels can be opened.'),
    exclude: z.array(channelName).default([]).describe('Channels that can never be opened or linked.'),
    aliasTemplate: z.string()
      .regex(/^#[^:$\s]+(?:\$(?:SERVER|CHANNEL)[^:$\s]*)*$/, { error: 'must start with # and a literal part, use only $SERVER and $CHANNEL, and hold no ":" or spaces' })
      .refine((t) => t.split('$CHANNEL').length === 2, { error: 'must hold $CHANNEL exactly once' })
      .optional().meta({ examples: ['#libera_$CHANNEL'] })
      .describe('Another alias for portal rooms of this server, besides #irc_<server>_<#channel>: $CHANNEL is the channel ' +
        '(with its #), $SERVER the server key, e.g. `#libera_$CHANNEL` → #libera_#rust. It must start with a literal part (the ' +
        'bridge claims every alias that starts so), and the registration file must be generated again after setting it.'),
    published: z.boolean().default(true)
      .describe('List portal rooms in the room directory under this server, where Matrix clients browse the IRC network ' +
        '(in Element: Explore rooms, then the server). It is a list of its own, not the homeserver\'s main one. Secret and ' +
        'private channels (+s, +p) are never listed, and plumbed rooms are their owners\' business.'),
  }).prefault({}).describe('Portal rooms created on demand.'),
  mappings: z.record(channelName, z.array(z.string().regex(/^!.+:.+$/, { error: 'must be a room id such as !abc:example.org' })))
    .default({}).describe('Static links: channel → Matrix room ids.'),
  modePowers: z.record(z.string().regex(/^[a-zA-Z]$/), z.int().min(0).max(100))
    .default({ q: 100, a: 75, o: 50, h: 25, v: 1 }).describe('Channel membership mode → Matrix power level.'),
  reconnect: z.strictObject({
    initialDelayMs: z.int().min(MIN_INITIAL_DELAY_MS).default(1000)
      .describe(`First wait before reconnecting a dropped connection, in milliseconds. At least ${MIN_INITIAL_DELAY_MS}: ` +
        'the wait doubles from it, so 0 would reconnect in a tight loop.'),
    maxDelayMs: z.int().min(MIN_MAX_DELAY_MS).default(60_000)
      .describe(`Longest wait between reconnect attempts, in milliseconds. At least ${MIN_MAX_DELAY_MS} (a second): it is ` +
        'how often each connection tries while the server is away, and IRC servers throttle or ban an address that ' +
        'connects too often.'),
    maxConcurrent: z.int().min(1).default(10).describe('Connections reconnecting at the same time, at most.'),
  }).superRefine((reconnect, ctx) => {
    if (reconnect.maxDelayMs < reconnect.initialDelayMs) {
      ctx.addIssue({ code: 'custom', path: ['maxDelayMs'], message: `must be at least reconnect.initialDelayMs (${reconnect.initialDelayMs})` });
    }
  }).prefault({}).describe('Reconnecting after a connection drops (exponential backoff with jitter).'),
  timeouts: z.strictObject({
    registerMs: z.int().min(1000).default(30_000)
      .describe('A connection the server has not registered (RPL_WELCOME) this long after connecting is dropped and tried again.'),
    answerMs: z.int().min(1000).default(10_000)
      .describe('A Matrix user\'s message the server has not confirmed (its labeled echo, or the PONG after it on a server without labels) this long makes the bridge PING the server; if it then answers none of that connection\'s commands for this long again, the connection is taken for dead: it is dropped and reconnected, and its unconfirmed messages are sent again.'),
  }).prefault({}).describe('How long to wait for the IRC server before taking a connection for dead.'),
  flood: z.strictObject({
    enabled: z.boolean().default(true)
      .describe('Pace what each Matrix user\'s connection (and the relay connection) sends: `burstLines` lines at once, then ' +
        '`linesPerSecond`, so the server does not kill it for flooding. A line that must wait holds back the lines after it: order ' +
        'never changes. false writes every line at once: only for a server that does not limit clients, or exempts the bridge\'s address.'),
    burstLines: z.int().min(1).default(10)
      .describe('Lines a connection may send at once after a quiet spell (the JOINs after a reconnect, the lines of a long message). ' +
        'Keep it within what the server allows a client before it kills it with "Excess Flood".'),
    linesPerSecond: z.number().gt(0).default(2)
      .describe('Lines a second a connection sends once its burst is spent. Keep it at or below the rate the server allows ' +
        'a client (commonly 2 a second, as solanum on Libera.Chat).'),
  }).prefault({})
    .describe('Client-side flood control, per connection: a token bucket that lets `burstLines` lines go at once, then ' +
      '`linesPerSecond`, so that the server never drops a connection for sending too fast (it would kill the connection, and the ' +
      'messages sent again after the reconnect would repeat lines). A line that must wait holds back every line after it: order ' +
      'is never changed. A multiline message counts its lines and two more; one longer than the burst waits for a full bucket. ' +
      'The bridge\'s own listening connection, which sends little, is not paced.'),
}).superRefine((server, ctx) => {
  // a host given as an address of the other family cannot be reached from the block's addresses
  const hostFamily = isIP(server.host);
  if (!server.addressBlock || !hostFamily) return;
  let family: number;
  try { family = parseBlock(server.addressBlock).family; } catch { return; } // reported on the field itself
  if (family !== hostFamily) {
    ctx.addIssue({ code: 'custom', path: ['addressBlock'], message: `is IPv${family}, but host ${server.host} is IPv${hostFamily}: ` +
      'no connection can go from one to the other (give a block of the host\'s family, or a host name with such an address)' });
  }
});

export const ircConfigSchema = networkSection({
  servers: z.record(z.string().regex(/^[a-z0-9-]+$/, { error: 'server keys use a-z, 0-9 and - only' }), ircServerSchema)
    .meta({ examples: [{ libera: { host: 'irc.libera.chat', port: 6697, tls: true } }] })
    .describe('IRC servers, by a short key used in ids and aliases (#irc_<key>_#channel).'),
  ident: z.strictObject({
    enabled: z.boolean().default(false)
      .describe('Answer IRC servers\' ident lookups for the bridge\'s connections, so Matrix users show their username ' +
        'instead of `~username` (unverified) and operators can ban by it. The bridge\'s host must be reachable by the ' +
        'IRC servers on this port.'),
    port: z.int().min(1).max(65535).default(113)
      .describe('Port of the ident server. IRC servers ask port 113: below 1024 the bridge needs CAP_NET_BIND_SERVICE ' +
        '(e.g. `setcap cap_net_bind_service=+ep $(which node)`, or AmbientCapabilities in a systemd unit), or listen on ' +
        'a high port and redirect 113 to it (e.g. an iptables REDIRECT rule).'),
    bindAddress: z.string().min(1).optional().meta({ examples: ['0.0.0.0'] })
      .describe('Address to listen on. Unset: every address of the host.'),
    maxClients: z.int().min(1).max(10_000).default(64)
      .describe('Ident clients (IRC servers asking) connected at once, at most; more are closed at once. Anyone can ' +
        'connect to the ident server: this bounds what they can hold. Raise it for many IRC servers asking at once ' +
        '(a bridge reconnecting hundreds of users).'),
    idleSeconds: z.int().min(1).max(3600).default(60)
      .describe('A client that asks nothing for this long is closed (RFC 1413 recommends 60 to 180 seconds).'),
  }).prefault({}).describe('Ident server (RFC 1413), one for all IRC servers: answers with the IRC username of the ' +
    'connection asked about, and only to the host that connection goes to.'),
  passwordKeyFile: z.string().default('data/irc-passwords.key')
    .describe('File with the key that encrypts stored IRC passwords and the private keys of client certificates (AES-256-GCM); created if missing. ' +
      'A relative path is resolved against the working directory the bridge is started in (not the folder of the config ' +
      'file): started from another directory, the bridge does not find the key, and refuses to start once passwords are stored.'),
});

export type IrcConfig = z.infer<typeof ircConfigSchema>;
export type IrcServerConfig = z.infer<typeof ircServerSchema>;
