/**
 * One IRC line (RFC 1459 framing with IRCv3 message tags): parsing it, and escaping tag values. Shared
 * by the Matrix users' connections (lean.ts), the listener's fast path (listen.ts) and the history
 * reader (history.ts). Pure.
 */

/** A parsed line: its tags, the nick of its prefix ('' for none), its command (upper case) and params. */
export interface IrcLine { tags: Record<string, string>; nick: string; command: string; params: string[] }

export function unescapeTag(v: string): string {
  return v.replace(/\\(.)/g, (_, c: string) => ({ ':': ';', s: ' ', r: '\r', n: '\n', '\\': '\\' } as Record<string, string>)[c] ?? c);
}
export function escapeTag(v: string): string {
  return v.replace(/[\\; \r\n]/g, (c) => ({ '\\': '\\\\', ';': '\\:', ' ': '\\s', '\r': '\\r', '\n': '\\n' } as Record<string, string>)[c]!);
}

/** Parse a line as irc-framework hands it over, with its CR LF still on. */
export function parseRawLine(line: string): IrcLine | undefined {
  let end = line.length;
  while (end > 0 && (line.charCodeAt(end - 1) === 10 || line.charCodeAt(end - 1) === 13)) end--;
  return parseLine(end < line.length ? line.slice(0, end) : line);
}

/** Parse one IRC line (RFC 1459 with IRCv3 tags). */
export function parseLine(line: string): IrcLine | undefined {
  let rest = line;
  const tags: Record<string, string> = {};
  if (rest.startsWith('@')) {
    const sp = rest.indexOf(' ');
    for (const kv of rest.slice(1, sp).split(';')) {
      const eq = kv.indexOf('=');
      if (eq < 0) tags[kv] = ''; else tags[kv.slice(0, eq)] = unescapeTag(kv.slice(eq + 1));
    }
    rest = rest.slice(sp + 1).trimStart();
  }
  let nick = '';
  if (rest.startsWith(':')) {
    const sp = rest.indexOf(' ');
    const prefix = rest.slice(1, sp);
    nick = prefix.split('!')[0] ?? prefix;
    rest = rest.slice(sp + 1).trimStart();
  }
  const trailingAt = rest.indexOf(' :');
  const head = trailingAt >= 0 ? rest.slice(0, trailingAt) : rest;
  const params = head.split(' ').filter(Boolean);
  const command = params.shift()?.toUpperCase();
  if (!command) return undefined;
  if (trailingAt >= 0) params.push(rest.slice(trailingAt + 2));
  else if (rest.startsWith(':')) params.push(rest.slice(1));
  return { tags, nick, command, params };
}

/** The capabilities of a `CAP LS`/`CAP NEW` list (`sasl=PLAIN,EXTERNAL sts=port=6697 batch`): name, and value ('' if none). */
export function capEntries(list: string): [string, string][] {
  return list.split(' ').filter(Boolean).map((c) => {
    const eq = c.indexOf('=');
    return eq < 0 ? [c, ''] : [c.slice(0, eq), c.slice(eq + 1)];
  });
}
