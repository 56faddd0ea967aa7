/**
 * Matrix events that remote networks have no equivalent for, said as plain text so that nobody on
 * the other side misses them: polls (MSC3381, in its unstable form as Element sends it and in the
 * extensible-events form) and locations (`m.location`, MSC3488).
 *
 * Event content is untrusted JSON: every field is checked, text is flattened to one line and capped,
 * and anything malformed gives `undefined` (the event is then not bridged) rather than an exception.
 */

/** Event types of a poll's start and end; votes (`poll.response`) are not bridged. */
export const POLL_START_TYPES: readonly string[] = ['org.matrix.msc3381.poll.start', 'm.poll.start'];
export const POLL_END_TYPES: readonly string[] = ['org.matrix.msc3381.poll.end', 'm.poll.end'];

const MAX_QUESTION = 300;
const MAX_ANSWER = 100;
const MAX_ANSWERS = 20;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** One line, no control characters, at most `max` characters (cut with an ellipsis). */
function oneLine(text: string, max: number): string {
  const flat = text.replace(/[\x00-\x1F\x7F\u0085\u2028\u2029]+/g, ' ').replace(/ {2,}/g, ' ').trim();
  const chars = [...flat];
  return chars.length > max ? `${chars.slice(0, max - 1).join('').trimEnd()}…` : flat;
}

/**
 * The text of an extensible-events text block: `org.matrix.msc1767.text` (a string), `m.text` (a
 * string, or a list of representations of which the plain one is preferred), or a legacy `body`.
 */
export function extensibleText(block: unknown): string | undefined {
  if (!isObj(block)) return undefined;
  const unstable = block['org.matrix.msc1767.text'];
  if (typeof unstable === 'string') return unstable;
  const stable = block['m.text'];
  if (typeof stable === 'string') return stable;
  if (Array.isArray(stable)) {
    const reps = stable.filter(isObj).filter((r) => typeof r['body'] === 'string');
    const plain = reps.find((r) => r['mimetype'] === undefined || r['mimetype'] === 'text/plain') ?? reps[0];
    if (plain) return plain['body'] as string;
  }
  return typeof block['body'] === 'string' ? block['body'] : undefined;
}

/**
 * A poll's start as one line: `Poll: question 1. yes · 2. no`, with `(choose up to N)` when more than
 * one answer may be picked. Undefined when the content holds no poll with a question.
 */
export function pollStartText(content: Obj): string | undefined {
  const poll = content['org.matrix.msc3381.poll.start'] ?? content['m.poll'];
  if (!isObj(poll)) return undefined;
  const questionText = extensibleText(poll['question']);
  if (questionText === undefined) return undefined;
  const question = oneLine(questionText, MAX_QUESTION);
  if (!question) return undefined;
  const answers = (Array.isArray(poll['answers']) ? poll['answers'] : [])
    .map((a) => extensibleText(a))
    .filter((a): a is string => a !== undefined)
    .map((a) => oneLine(a, MAX_ANSWER))
    .filter((a) => a !== '');
  const shown = answers.slice(0, MAX_ANSWERS).map((a, i) => `${i + 1}. ${a}`);
  if (answers.length > MAX_ANSWERS) shown.push(`(${answers.length - MAX_ANSWERS} more)`);
  const max = poll['max_selections'];
  const choose = typeof max === 'number' && Number.isInteger(max) && max > 1 ? ` (choose up to ${Math.min(max, answers.length)})` : '';
  return `Poll: ${question}${choose}${shown.length ? ` ${shown.join(' · ')}` : ''}`;
}

/**
 * A poll's end as one line: the text the client put in it (Element says the top answer there), or
 * plainly that the poll has ended.
 */
export function pollEndText(content: Obj): string {
  const said = extensibleText(content);
  const text = said === undefined ? '' : oneLine(said, MAX_QUESTION);
  return text || 'The poll has ended.';
}

/**
 * An `m.location` message as text with a map link anyone can open:
 * `Location: <description> https://www.openstreetmap.org/?mlat=…&mlon=…#map=16/…/…`.
 * Undefined when the geo URI is missing or not a valid latitude and longitude.
 */
export function locationText(content: Obj): string | undefined {
  const block = content['m.location'] ?? content['org.matrix.msc3488.location'];
  const uri = (isObj(block) && typeof block['uri'] === 'string' ? block['uri'] : undefined)
    ?? (typeof content['geo_uri'] === 'string' ? content['geo_uri'] : undefined);
  const m = uri?.match(/^geo:(-?\d{1,3}(?:\.\d+)?),(-?\d{1,3}(?:\.\d+)?)(?:,-?\d+(?:\.\d+)?)?(?:;.*)?$/i);
  if (!m) return undefined;
  const lat = Number(m[1]);
  const lon = Number(m[2]);
  if (!(Math.abs(lat) <= 90 && Math.abs(lon) <= 180)) return undefined;
  const described = isObj(block) && typeof block['description'] === 'string' ? oneLine(block['description'], MAX_QUESTION) : '';
  const link = `https://www.openstreetmap.org/?mlat=${m[1]}&mlon=${m[2]}#map=16/${m[1]}/${m[2]}`;
  return `Location: ${described ? `${described} ` : ''}${link}`;
}
