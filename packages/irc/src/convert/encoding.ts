/**
 * IRC carries bytes, not text. Most clients send UTF-8, but older ones still send a legacy 8-bit
 * encoding (windows-1252 and Latin-1 in the west, KOI8-R or windows-1251 elsewhere), and a line of
 * those read as UTF-8 loses every accented letter to U+FFFD. Lines that are valid UTF-8 are read
 * as UTF-8; any other line is read with the server's `encodingFallback` (matrix-appservice-irc's
 * option of the same name). Pure.
 */
import { isUtf8 } from 'node:buffer';

/** Is this a label TextDecoder knows (e.g. `windows-1252`, `iso-8859-15`, `koi8-r`)? */
export function knownEncoding(label: string): boolean {
  try { new TextDecoder(label); return true; } catch { return false; }
}

/**
 * A decoder for the bytes of one line (`start`..`end` of `buf`): UTF-8 when they are UTF-8, else
 * the fallback encoding (none: UTF-8 with U+FFFD for what is not). Costs nothing more on a line
 * whose UTF-8 reading has no U+FFFD.
 */
export function lineDecoder(fallback: string | undefined): (buf: Buffer, start: number, end: number) => string {
  if (!fallback) return (buf, start, end) => buf.toString('utf8', start, end);
  const legacy = new TextDecoder(fallback);
  // Node 20 reads windows-1252 (and the labels the Encoding standard gives it: latin1, ascii...) as
  // ISO-8859-1, where 0x80-0x9F are control characters instead of € ‚ ƒ „ … and the rest
  const fix = legacy.encoding === 'windows-1252' ? fixCp1252 : (t: string): string => t;
  return (buf, start, end) => {
    const text = buf.toString('utf8', start, end);
    if (!text.includes('\uFFFD')) return text;
    const bytes = buf.subarray(start, end);
    return isUtf8(bytes) ? text : fix(legacy.decode(bytes)); // a real U+FFFD in UTF-8 stays as it is
  };
}

/** windows-1252's 0x80-0x9F (the five it leaves undefined stay as they are). */
const CP1252_HIGH = '€\u0081‚ƒ„…†‡ˆ‰Š‹Œ\u008dŽ\u008f\u0090‘’“”•–—˜™š›œ\u009džŸ';
const fixCp1252 = (text: string): string => text.replace(/[\u0080-\u009f]/g, (c) => CP1252_HIGH[c.charCodeAt(0) - 0x80]!);
