/**
 * IRC ids, built and parsed only here.
 * - chat: `<server>/<#channel lower-cased>` or, for a private chat, `<server>/pm/<matrix user>/<ghost key>`:
 *   the chat is with the IRC user's ghost, so it stays one chat (one DM room) across their nick changes.
 *   (Private chats opened before were keyed by the nick, lower-cased, the IRC user had when they wrote:
 *   read as a ghost key, which it is for a ghost first seen under that nick, the usual case.)
 * - remote user: `<server>/<ghost key>`; the ghost key is the nick the bridge first saw, so a nick
 *   change renames the same ghost instead of swapping to another one.
 */
import { escapeRegex } from '@trestle/core';
export type IrcChatId = string & { readonly __brand: 'IrcChatId' };
export type IrcUserId = string & { readonly __brand: 'IrcUserId' };

/** RFC 1459 case mapping: A-Z and []\~ fold to a-z and {}|^. */
export function ircLower(s: string): string {
  // on every line of the hot paths: most nicks and channels are already folded, so look before copying
  return NEEDS_FOLDING.test(s) ? s.replace(FOLD_ALL, (c) => FOLD[c] ?? c.toLowerCase()) : s;
}
const NEEDS_FOLDING = /[A-Z[\]\\~]/;
const FOLD_ALL = /[A-Z[\]\\~]/g;
const FOLD: Record<string, string> = { '[': '{', ']': '}', '\\': '|', '~': '^' };

/**
 * A channel renamed on the server (IRCv3 `draft/channel-rename`): what a map or set holds for it,
 * under its lower-cased name, moves to the new name. True if there was anything to move.
 */
export function moveChannel<V>(held: Map<string, V> | Set<string>, from: string, to: string): boolean {
  const a = ircLower(from), b = ircLower(to);
  if (!held.has(a) || a === b) return false;
  if (held instanceof Set) { held.delete(a); held.add(b); return true; }
  const v = held.get(a) as V;
  held.delete(a);
  held.set(b, v);
  return true;
}

export const isChannel = (target: string): boolean => /^[#&+!]/.test(target);

export function channelChat(server: string, channel: string): IrcChatId {
  return `${server}/${ircLower(channel)}` as IrcChatId;
}

/**
 * What a user types to name a channel for `link`/`unlink` and the provisioning API:
 * `<server>/<#channel>` or `<server> <#channel>` → its chat id; anything else → undefined.
 */
export function parseLinkTarget(words: string): { server: string; channel: string; chat: IrcChatId } | undefined {
  // a channel name holds no comma, BEL or control character (RFC 2812 §1.3): a comma would make the
  // JOIN written for it a JOIN of two channels (`#a,0`: and JOIN 0 leaves every channel)
  const m = /^([a-z0-9-]+)[/ ]([#&+!][^\s,\x00-\x1f]+)$/.exec(words.trim());
  return m ? { server: m[1]!, channel: m[2]!, chat: channelChat(m[1]!, m[2]!) } : undefined;
}

/** The private chat of a Matrix user with the IRC user whose ghost has this key (not a nick: nicks change). */
export function pmChat(server: string, matrixUser: string, ghostKey: string): IrcChatId {
  return `${server}/pm/${matrixUser}/${ircLower(ghostKey)}` as IrcChatId;
}

export type ParsedChat =
  | { kind: 'channel'; server: string; channel: string }
  | { kind: 'pm'; server: string; matrixUser: string; ghostKey: string };

export function parseChat(chat: string): ParsedChat | undefined {
  const slash = chat.indexOf('/');
  if (slash <= 0) return undefined;
  const server = chat.slice(0, slash);
  const rest = chat.slice(slash + 1);
  if (rest.startsWith('pm/')) {
    const last = rest.lastIndexOf('/');
    const matrixUser = rest.slice(3, last);
    const ghostKey = rest.slice(last + 1);
    return matrixUser && ghostKey ? { kind: 'pm', server, matrixUser, ghostKey } : undefined;
  }
  return isChannel(rest) ? { kind: 'channel', server, channel: rest } : undefined;
}

export function ircUser(server: string, ghostKey: string): IrcUserId {
  return `${server}/${ghostKey}` as IrcUserId;
}

export function parseUser(id: string): { server: string; ghostKey: string } | undefined {
  const slash = id.indexOf('/');
  return slash > 0 ? { server: id.slice(0, slash), ghostKey: id.slice(slash + 1) } : undefined;
}

/** Ghost localpart (after the `irc_` prefix): `<server>_<ghost key>`. Core escapes what Matrix does not allow. */
export function ghostLocalpart(id: string): string {
  const p = parseUser(id);
  return p ? `${p.server}_${p.ghostKey}` : id;
}

/**
 * An alias template (`#libera_$CHANNEL`, see the config) as a regular expression on alias localparts,
 * for `server`: its literal parts as they are, $SERVER the server key, $CHANNEL captured.
 */
export function aliasTemplatePattern(template: string, server: string): string {
  return template.slice(1).split(/(\$SERVER|\$CHANNEL)/).map((part) =>
    part === '$SERVER' ? escapeRegex(server) : part === '$CHANNEL' ? '([#&+!][^\\s,:]{1,199})' : escapeRegex(part)).join('');
}

/** Alias localpart `irc_<server>_<#channel>` → server and channel. */
export function parseAliasLocalpart(localpart: string, prefix: string): { server: string; channel: string } | undefined {
  if (!localpart.startsWith(prefix)) return undefined;
  const rest = localpart.slice(prefix.length);
  const sep = rest.indexOf('_');
  if (sep <= 0) return undefined;
  const server = rest.slice(0, sep);
  const channel = rest.slice(sep + 1);
  return isChannel(channel) ? { server, channel } : undefined;
}
