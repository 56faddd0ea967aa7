/**
 * Mentions on both sides, pure: Matrix pills (`https://matrix.to/#/...` links) and Discord's
 * mention tokens, `allowed_mentions`, and the text that stands for a mention when it cannot be one.
 */

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' } as Record<string, string>)[c]!);
}

/** matrix.to characters left readable in a pill link; the rest is percent-encoded. */
const encodeId = (id: string): string => encodeURIComponent(id).replace(/%40/g, '@').replace(/%3A/gi, ':').replace(/%21/g, '!').replace(/%23/g, '#');

export const userPillHref = (userId: string): string => `https://matrix.to/#/${encodeId(userId)}`;
export const roomPillHref = (roomIdOrAlias: string): string => `https://matrix.to/#/${encodeId(roomIdOrAlias)}`;

export type MatrixPermalink =
  | { kind: 'user'; userId: string }
  | { kind: 'room'; room: string }
  | { kind: 'event'; room: string; eventId: string };

/**
 * What a link points at, if it is a Matrix permalink: `https://matrix.to/#/<id>` (with optional
 * `?via=` query) or `matrix:u/...`, `matrix:r/...`, `matrix:roomid/...` URIs (MSC2312).
 */
export function parsePermalink(href: string): MatrixPermalink | undefined {
  let m = /^https:\/\/matrix\.to\/#\/([^?]+)/.exec(href);
  if (m) {
    const parts = m[1]!.split('/').map(decode);
    const [first, second] = parts;
    if (!first) return undefined;
    if (first.startsWith('@')) return { kind: 'user', userId: first };
    if (first.startsWith('#') || first.startsWith('!')) {
      return second?.startsWith('$') ? { kind: 'event', room: first, eventId: second } : { kind: 'room', room: first };
    }
    return undefined;
  }
  m = /^matrix:(u|r|roomid)\/([^/?]+)(?:\/e\/([^/?]+))?/.exec(href);
  if (!m) return undefined;
  const id = decode(m[2]!);
  if (m[1] === 'u') return { kind: 'user', userId: `@${id}` };
  const room = m[1] === 'r' ? `#${id}` : `!${id}`;
  return m[3] ? { kind: 'event', room, eventId: `$${decode(m[3])}` } : { kind: 'room', room };
}

/** Percent-decoding that keeps a malformed part (`%ZZ`, a lone `%`) as it is instead of throwing. */
function decode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

/** Discord's mention tokens. */
export const userMention = (id: string): string => `<@${id}>`;
export const roleMention = (id: string): string => `<@&${id}>`;
export const channelMention = (id: string): string => `<#${id}>`;
export const customEmoji = (e: { id: string; name: string; animated?: boolean }): string => `<${e.animated ? 'a' : ''}:${e.name}:${e.id}>`;

/** Who a message from Matrix may ping: always set, so nothing pings that the sender did not pill. */
export interface AllowedMentions {
  parse: ('everyone' | 'users' | 'roles')[];
  users: string[];
  roles: string[];
  replied_user: boolean;
}

export function allowedMentions(m: { users: Iterable<string>; roles: Iterable<string>; everyone: boolean }): AllowedMentions {
  return {
    parse: m.everyone ? ['everyone'] : [],
    users: [...new Set(m.users)].slice(0, 100),
    roles: [...new Set(m.roles)].slice(0, 100),
    replied_user: false,
  };
}

/** The Discord user ids mentioned in content (`<@id>` and `<@!id>`). */
export function mentionedUserIds(content: string): string[] {
  return [...new Set([...content.matchAll(/<@!?(\d{1,20})>/g)].map((m) => m[1]!))];
}

/** Custom emojis used in content (`<:name:id>`, `<a:name:id>`). */
export function customEmojisIn(content: string): { id: string; name: string; animated: boolean }[] {
  const seen = new Map<string, { id: string; name: string; animated: boolean }>();
  for (const m of content.matchAll(/<(a?):(\w{1,64}):(\d{1,20})>/g)) seen.set(m[3]!, { id: m[3]!, name: m[2]!, animated: m[1] === 'a' });
  return [...seen.values()];
}
