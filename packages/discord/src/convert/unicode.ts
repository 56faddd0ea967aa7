/**
 * Text as people read it, for the checks that compare what text looks like (a host name in a
 * link's text, a webhook name against members' names): characters that show nothing, and letters
 * of other scripts that look like Latin ones, must not make two names that look the same differ.
 * Pure.
 */

/**
 * Characters that show nothing (default-ignorable: zero-width spaces and joiners, soft hyphens,
 * word joiners, variation selectors, tag characters...) and the controls that reorder text.
 */
const INVISIBLE = /[\p{Default_Ignorable_Code_Point}\p{Bidi_Control}]/u;
const INVISIBLE_ALL = new RegExp(INVISIBLE.source, 'gu');

/**
 * The invisible characters that belong to an emoji: a presentation selector after it (`❤️`, `1️⃣`)
 * and a joiner between two (`👩‍💻`, `🏳️‍🌈`). Without them the emoji falls apart (a family becomes
 * three people); an emoji is no part of a word or a host name, so they hide nothing.
 */
const EMOJI_INVISIBLES = /(?<=\p{Extended_Pictographic})[\uFE0E\uFE0F]|(?<=[#*0-9])\uFE0F(?=\u20E3)|(?<=[\p{Extended_Pictographic}\u{1F3FB}-\u{1F3FF}]\uFE0F?)\u200D(?=\p{Extended_Pictographic})/gu;

/** Whether text holds an invisible or reordering character other than those of an emoji. */
export function hasInvisibles(s: string): boolean {
  return INVISIBLE.test(s.replace(EMOJI_INVISIBLES, ''));
}

/** Text without its invisible and reordering characters; `keepEmoji`: but for those of an emoji. */
export function dropInvisibles(s: string, keepEmoji = false): string {
  if (!keepEmoji) return s.replace(INVISIBLE_ALL, '');
  const emojiParts = new Set<number>();
  for (const m of s.matchAll(EMOJI_INVISIBLES)) emojiParts.add(m.index);
  return s.replace(INVISIBLE_ALL, (c: string, at: number) => (emojiParts.has(at) ? c : ''));
}

/**
 * Letters of other scripts that look like a Latin letter, and that letter (written as escapes: in
 * source they would look like the Latin ones). Capitals first, so that `А`, `Α` and `A` are all
 * `a` once lower-cased; then the small letters that look like a Latin small letter. Only for
 * comparing; a few pairs only look alike in some fonts (`η`/`n`), which at worst marks as taken
 * a name nobody has.
 */
const lookalikes = (from: string, to: string): Map<string, string> => new Map([...from].map((c, i) => [c, to[i]!]));
const LOOKALIKE_CAPITALS = lookalikes(
  '\u0410\u0412\u0415\u041A\u041C\u041D\u041E\u0420\u0421\u0422\u0425\u0405\u0406\u0408\u051A\u051C\u04AE\u04BA\u04C0' + // Cyrillic ABEKMHOPCTXSIJQWYHI
  '\u0391\u0392\u0395\u0396\u0397\u0399\u039A\u039C\u039D\u039F\u03A1\u03A4\u03A5\u03A7', // Greek ABEZHIKMNOPTYX
  'ABEKMHOPCTXSIJQWYHIABEZHIKMNOPTYX');
const LOOKALIKE_SMALL = lookalikes(
  '\u0430\u0435\u043E\u0440\u0441\u0443\u0445\u0455\u0456\u0458\u0501\u051B\u051D\u04BB\u04CF\u04AF' + // Cyrillic aeopcyxsijdqwhly
  '\u03B1\u03BF\u03BD\u03C1\u03B9\u03BA\u03C5\u03C7\u03B7' + // Greek aovpikuxn
  '\u0131\u0237\u0251\u0261', // Latin dotless i and j, script a and g
  'aeopcyxsijdqwhlyaovpikuxnijag');
const CAPITALS = new RegExp(`[${[...LOOKALIKE_CAPITALS.keys()].join('')}]`, 'gu');
const SMALL = new RegExp(`[${[...LOOKALIKE_SMALL.keys()].join('')}]`, 'gu');

/**
 * What a name is compared as, to tell whether two names look the same: NFKC (full-width and
 * styled letters as plain ones), without invisible characters, look-alike letters of other scripts
 * as Latin ones, lower case. `Admin`, `Admin\u200b`, `A\u00addmin`, `Ａｄｍｉｎ` and `Аdmin`
 * (Cyrillic А) are all `admin`.
 */
export function nameKey(name: string): string {
  // (most names are plain ASCII, and a guild's members are keyed on every message)
  if (/^[\x20-\x7e]*$/.test(name)) return name.toLowerCase();
  return dropInvisibles(name.normalize('NFKC')).replace(CAPITALS, (c) => LOOKALIKE_CAPITALS.get(c)!).toLowerCase()
    .replace(SMALL, (c) => LOOKALIKE_SMALL.get(c)!);
}
