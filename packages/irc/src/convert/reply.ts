/**
 * Matrix replies as IRC text. Plain IRC has no replies, so the reply names whom it answers:
 * `nick: text` when the message it answers is recent (everyone still has it in view), and
 * `<nick> "short quote…" <- text` when it is older, so the channel knows which message is meant.
 * Deciding which form is safe is not done here (see replies.ts): this only writes the text.
 */
import { stripControls } from './matrixToIrc.js';

/**
 * The first words of a message, on one line and without control characters, at most `max`
 * characters (code points, never a half surrogate pair), cut at a word boundary when there is one
 * and marked with `…` when cut.
 */
export function shortQuote(body: string, max: number): string {
  // the quoted body is the Matrix event's, as typed: its controls (mIRC codes, CTCP's \x01) would
  // colour or hide the rest of the line, and a cut could leave a bare \x03 eating the digits after it
  const flat = stripControls(body.replace(/[\s\0]+/g, ' ')).replace(/ {2,}/g, ' ').trim();
  const chars = [...flat];
  if (chars.length <= max) return flat;
  const keep = Math.max(1, max - 1); // room for the …
  let cut = chars.slice(0, keep).join('');
  const space = cut.lastIndexOf(' ');
  if (chars[keep] !== ' ' && space >= max / 2) cut = cut.slice(0, space); // not in the middle of a word
  return `${cut.trimEnd()}…`;
}

/** The first line of a reply on IRC: `nick: text`, or with a quote, `<nick> "quote" <- text`. */
export function replyLine(opts: { nick: string; text: string; quote?: string; quoteLength?: number }): string {
  if (opts.quote === undefined) return `${opts.nick}: ${opts.text}`;
  const quote = shortQuote(opts.quote, opts.quoteLength ?? 40);
  if (!quote) return `${opts.nick}: ${opts.text}`;
  return `<${opts.nick}> "${quote}" <- ${opts.text}`;
}
