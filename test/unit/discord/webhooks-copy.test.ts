/**
 * Finding the copy of a webhook post whose answer was lost (webhooks.ts): which failures may have left
 * a message on Discord, and which message of a channel is the attempt's. Pure: no I/O.
 */
import type { APIMessage } from 'discord.js';
import { describe, expect, it } from 'vitest';
import {
  COPY_SEARCH_SLACK_MS, findCopy, isCopyOf, mayHavePosted, postAttempt, sameFileName, snowflakeAt, type PostAttempt,
} from '../../../packages/discord/src/webhooks.js';

const AT = Date.UTC(2025, 5, 1, 12, 0, 0);
const HOOK = '700000000000000001';
const ours = (id: string | null | undefined): boolean => id === HOOK;
const nothingTaken = (): boolean => false;

/** A message a webhook posted `ms` after the attempt (the id says when, as Discord's do). */
function posted(ms: number, o: { content?: string; username?: string; webhook?: string | null; files?: { filename: string; size: number }[]; seq?: number } = {}): APIMessage {
  const id = (BigInt(snowflakeAt(AT + ms)) + BigInt(o.seq ?? 1)).toString();
  return {
    id, channel_id: '10', content: o.content ?? 'hello', author: { id: o.webhook ?? HOOK, username: o.username ?? 'Alice' },
    attachments: (o.files ?? []).map((f, i) => ({ id: String(i), ...f })), webhook_id: o.webhook === undefined ? HOOK : o.webhook,
  } as unknown as APIMessage;
}

const attempt = (o: Partial<PostAttempt> = {}): PostAttempt => ({ where: '10', content: 'hello', username: 'Alice', files: [], at: AT, ...o });

describe('mayHavePosted: failures after which Discord may hold the message', () => {
  it.each<[string, unknown, boolean]>([
    ['a timeout (AbortError, no status)', Object.assign(new Error('This operation was aborted'), { name: 'AbortError' }), true],
    ['a connection reset', Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNRESET' } }), true],
    ['a closed socket', Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }), true],
    ['500', Object.assign(new Error('Internal Server Error'), { status: 500 }), true],
    ['502 from the proxy', Object.assign(new Error('Bad Gateway'), { status: 502 }), true],
    ['503', Object.assign(new Error('Service Unavailable'), { status: 503 }), true],
    ['400 refused', Object.assign(new Error('Invalid Form Body'), { status: 400, code: 50035 }), false],
    ['404 webhook gone', Object.assign(new Error('Unknown Webhook'), { status: 404, code: 10015 }), false],
    ['429', Object.assign(new Error('rate limited'), { status: 429 }), false],
  ])('%s', (_name, err, expected) => {
    expect(mayHavePosted(err)).toBe(expected);
  });
});

describe('the copy of an attempt', () => {
  it('notes what a post is: where, text, name, files (names and sizes), when', () => {
    const a = postAttempt('10', { content: 'hi', username: 'Alice', allowed_mentions: { parse: [] } },
      [{ name: 'a b.png', data: Buffer.from('12345') }, { name: 'c.txt', data: 'héllo' }], AT);
    expect(a).toEqual({ where: '10', content: 'hi', username: 'Alice', files: [{ name: 'a b.png', size: 5 }, { name: 'c.txt', size: 6 }], at: AT });
    expect(JSON.parse(JSON.stringify(a))).toEqual(a); // kept as JSON
    expect(postAttempt('11', {}, [], AT)).toEqual({ where: '11', content: '', files: [], at: AT });
  });

  it('file names as Discord tidies them', () => {
    expect(sameFileName('my photo (1).png', 'my_photo_1.png')).toBe(true);
    expect(sameFileName('Été.PNG', 't.png')).toBe(true);
    expect(sameFileName('a.png', 'b.png')).toBe(false);
  });

  it('matches text (as Discord trims it), name, and files in order by name and size', () => {
    expect(isCopyOf(attempt({ content: ' hello\n' }), posted(100))).toBe(true);
    expect(isCopyOf(attempt({ content: 'hello!' }), posted(100))).toBe(false);
    expect(isCopyOf(attempt({ username: 'Bob' }), posted(100))).toBe(false);
    const files = [{ name: 'a b.png', size: 5 }, { name: 'c.txt', size: 6 }];
    expect(isCopyOf(attempt({ files }), posted(100, { files: [{ filename: 'a_b.png', size: 5 }, { filename: 'c.txt', size: 6 }] }))).toBe(true);
    expect(isCopyOf(attempt({ files }), posted(100, { files: [{ filename: 'a_b.png', size: 5 }, { filename: 'c.txt', size: 7 }] }))).toBe(false);
    expect(isCopyOf(attempt({ files }), posted(100, { files: [{ filename: 'a_b.png', size: 5 }] }))).toBe(false);
    expect(isCopyOf(attempt(), posted(100, { files: [{ filename: 'x.png', size: 1 }] }))).toBe(false);
  });

  it('is one of the bridge\'s webhooks\', made since shortly before the attempt, not taken; the oldest of several', () => {
    const early = posted(-COPY_SEARCH_SLACK_MS - 1000);
    const otherHook = posted(50, { webhook: '700000000000000002' });
    const human = posted(60, { webhook: null });
    const mapped = posted(80);
    const first = posted(100, { seq: 2 });
    const second = posted(200, { seq: 3 });
    const all = [second, human, early, first, otherHook, mapped];
    expect(findCopy(attempt(), all, ours, (m) => m.id === mapped.id)?.id).toBe(first.id);
    expect(findCopy(attempt(), all, ours, (m) => m.id === mapped.id || m.id === first.id)?.id).toBe(second.id);
    expect(findCopy(attempt(), [early, otherHook, human], ours, nothingTaken)).toBeUndefined();
    // the bridge's clock ahead of Discord's by a few seconds: still found
    expect(findCopy(attempt(), [posted(-5000)], ours, nothingTaken)).toBeDefined();
  });

  it('snowflakeAt: ids of messages made after the time are greater', () => {
    expect(BigInt(posted(1).id) > BigInt(snowflakeAt(AT))).toBe(true);
    expect(BigInt(posted(-1).id) < BigInt(snowflakeAt(AT))).toBe(true);
  });
});
