/** Nicks for Matrix users on IRC: from a template, fixed to IRC's rules, truncated, de-collided. */

import { ircLower } from './ids.js';

export interface TemplateVars { userId: string; displayName: string }

export function fillTemplate(template: string, v: TemplateVars): string {
  const localpart = v.userId.slice(1).split(':')[0] ?? v.userId;
  return template.replace(/\$DISPLAY/g, v.displayName || localpart).replace(/\$LOCALPART/g, localpart).replace(/\$USERID/g, v.userId);
}

/** What of a string a nick can hold: accents dropped from letters (é → e), other characters left out. */
const nickChars = (raw: string): string => raw.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').replace(/[^A-Za-z0-9[\]\\`_^{|}-]/g, '');

/**
 * A Matrix user's nick from the nick template, valid and at most `maxLen` long. `$DISPLAY` is their
 * display name, or their localpart when a nick can hold no letter of it (a name in Chinese or
 * Cyrillic script, emoji alone): else they would all be `[m]`, `[m]_`, `[m]2`...
 */
export function templateNick(template: string, v: TemplateVars, maxLen = 30): string {
  const localpart = v.userId.slice(1).split(':')[0] ?? v.userId;
  const displayName = /[A-Za-z]/.test(nickChars(v.displayName)) ? v.displayName : localpart;
  return sanitiseNick(fillTemplate(template, { ...v, displayName }), maxLen);
}

/**
 * Make a string a valid IRC nick: letters, digits and `[]\`_^{|}-`; not starting with a digit or
 * `-`; at most `maxLen` characters. Empty results fall back to `matrix_user`.
 */
export function sanitiseNick(raw: string, maxLen = 30): string {
  let nick = nickChars(raw);
  if (/^[0-9-]/.test(nick)) nick = `M${nick}`;
  if (!nick) nick = 'matrix_user';
  return nick.slice(0, maxLen);
}

/** The next nick to try after `nick` was refused as in use: append/replace a numeric suffix within maxLen. */
export function nextNick(nick: string, attempt: number, maxLen = 30): string {
  const suffix = attempt === 1 ? '_' : String(attempt);
  return nick.slice(0, Math.max(1, maxLen - suffix.length)) + suffix;
}

export function sanitiseUsername(raw: string): string {
  return (raw.toLowerCase().replace(/[^a-z0-9_.-]/g, '') || 'matrix').slice(0, 10);
}

/**
 * Taking back a nick refused as in use at registration (a user of that name, or this bridge's own
 * connection from before a crash that the server has not timed out yet): the server is asked to
 * watch it (IRCv3 MONITOR, where ISUPPORT offers it) and the connection changes to it once the
 * server says it is free. One per connection, for both kinds of connection; each method returns
 * the raw lines to send.
 */
export class NickRegain {
  /** The last nick refused at registration was in use (433), not invalid. */
  private taken = false;
  private wanted?: string;
  private watching = false;

  /** A new connection attempt: nothing refused, nothing to take back. */
  reset(): void { this.taken = false; this.wanted = undefined; this.watching = false; }

  /** A nick was refused during registration: in use (433), or invalid. */
  refused(inUse: boolean): void { this.taken = inUse; }

  /** Registered as `nick`, having asked for `wanted`. */
  registered(wanted: string, nick: string): void {
    this.wanted = this.taken && ircLower(nick) !== ircLower(wanted) ? wanted : undefined;
    this.taken = false;
    this.watching = false;
  }

  /** The server offers MONITOR: watch the nick to take back, if there is one (once). */
  monitorOffered(): string[] {
    if (!this.wanted || this.watching) return [];
    this.watching = true;
    return [`MONITOR + ${this.wanted}`];
  }

  /** RPL_MONOFFLINE for these nicks: the nick to take back, if it is one of them. */
  offline(nicks: readonly string[]): string | undefined {
    const w = this.wanted;
    return w !== undefined && nicks.some((n) => ircLower(n) === ircLower(w)) ? w : undefined;
  }

  /** The connection's own nick changed (taken back, or another chosen since): nothing more to wait for. */
  nickChanged(): string[] {
    const out = this.wanted && this.watching ? [`MONITOR - ${this.wanted}`] : [];
    this.wanted = undefined;
    this.watching = false;
    return out;
  }
}
