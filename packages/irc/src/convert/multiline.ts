/**
 * IRC → Matrix: the lines of an IRCv3 `draft/multiline` batch as the one message they are. Lines
 * are joined with a line break, except a line tagged `draft/multiline-concat`, which continues the
 * one before it (a long line the sender had to split to fit IRC's line length). So a line break
 * here always ends an IRC line, and `ircToMatrix` ends the line's formatting there, as IRC clients
 * do; a concat piece keeps the formatting of the line it continues.
 */
export interface MultilineLine { text: string; concat: boolean }

export function joinMultiline(lines: readonly MultilineLine[]): string {
  let out = '';
  lines.forEach((l, i) => { out += i === 0 || l.concat ? l.text : `\n${l.text}`; });
  return out;
}
