/** Nicks for Matrix users on IRC: from a template, fixed to IRC's rules, truncated, de-collided. */

export interface TemplateVars { userId: string; displayName: string }

export function fillTemplate(template: string, v: TemplateVars): string {
  const localpart = v.userId.slice(1).split(':')[0] ?? v.userId;
  return template.replace(/\$DISPLAY/g, v.displayName || localpart).replace(/\$LOCALPART/g, localpart).replace(/\$USERID/g, v.userId);
}

/**
 * Make a string a valid IRC nick: letters, digits and `[]\`_^{|}-`; not starting with a digit or
 * `-`; at most `maxLen` characters. Empty results fall back to `matrix_user`.
 */
export function sanitiseNick(raw: string, maxLen = 30): string {
  let nick = raw.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').replace(/[^A-Za-z0-9[\]\\`_^{|}-]/g, '');
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
