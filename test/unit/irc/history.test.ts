// The pure parts of fetching back what was said while the listener was away (history.ts): the
// CHATHISTORY request, its limit, the marks and their persistence, and reading the answer's batch
// (a draft/multiline batch nested in it included) off raw lines as the server sends them.
import { describe, expect, it } from 'vitest';
import { chathistoryAfter, HistoryBatches, HistoryFetch, HistoryMarks, historyReaction, serverPageMax, type HistoryItem } from '../../../packages/irc/src/history.js';
import { parseRawLine } from '../../../packages/irc/src/ircline.js';
import { historyMessage } from '../../../packages/irc/src/listen.js';

/** A kv store in memory, counting its writes. */
function memoryKv(): { get(k: string): string | undefined; set(k: string, v: string): void; data: Map<string, string>; writes: number } {
  const data = new Map<string, string>();
  const kv = { data, writes: 0, get: (k: string) => data.get(k), set: (k: string, v: string) => { kv.writes++; data.set(k, v); } };
  return kv;
}

describe('the CHATHISTORY request', () => {
  it('asks for messages after the mark (an ISO timestamp with milliseconds) or after a msgid', () => {
    expect(chathistoryAfter('#rust', { time: Date.UTC(2026, 10, 28, 2, 49, 8, 766) }, 100)).toBe('CHATHISTORY AFTER #rust timestamp=2026-11-28T02:49:08.766Z 100');
    expect(chathistoryAfter('#rust', { msgid: 'abc' }, 3)).toBe('CHATHISTORY AFTER #rust msgid=abc 3');
  });

  it.each([
    ['1000', 1000], ['50', 50], [undefined, undefined], ['0', undefined], ['lots', undefined], [20, 20],
  ])('reads the server\'s most per request from ISUPPORT CHATHISTORY=%s: %s', (isupport, expected) => {
    expect(serverPageMax(isupport)).toBe(expected);
  });
});

/** A history item: one raw line, as HistoryBatches gives it. */
const item = (raw: string): HistoryItem => ({ kind: 'line', line: parseRawLine(raw)! });
/** `n` channel lines from `first` on, said a second apart from 02:00:00, msgids m<i>. */
const said = (first: number, n: number): HistoryItem[] => Array.from({ length: n }, (_, k) => first + k).map((i) =>
  item(`@time=2026-11-28T02:00:${String(i).padStart(2, '0')}.000Z;msgid=m${i} :alice!a@h PRIVMSG #rust :line ${i}`));
const mark = Date.UTC(2026, 10, 28, 1);
const joined = { msgid: 'join', time: Date.UTC(2026, 10, 28, 3) };

describe('fetching a channel\'s history page by page', () => {
  it('asks for the whole limit at once when the server allows it', () => {
    const fetch = new HistoryFetch('#rust', 100, 1000, joined);
    expect(fetch.first(mark)).toBe('CHATHISTORY AFTER #rust timestamp=2026-11-28T01:00:00.000Z 100');
    expect(fetch.page(said(1, 5))).toEqual({ items: said(1, 5), incomplete: false });
  });

  it('pages on after the last msgid while pages come back full, and stops at a short one', () => {
    const fetch = new HistoryFetch('#rust', 100, 3, joined);
    expect(fetch.first(mark)).toBe('CHATHISTORY AFTER #rust timestamp=2026-11-28T01:00:00.000Z 3');
    expect(fetch.page(said(1, 3))).toEqual({ items: said(1, 3), next: 'CHATHISTORY AFTER #rust msgid=m3 3', incomplete: false });
    expect(fetch.page(said(4, 3))).toEqual({ items: said(4, 3), next: 'CHATHISTORY AFTER #rust msgid=m6 3', incomplete: false });
    expect(fetch.page(said(7, 1))).toEqual({ items: said(7, 1), incomplete: false });
  });

  it('asks for no more than the limit in all, and says the fetch is incomplete when it reaches it with a full page', () => {
    const fetch = new HistoryFetch('#rust', 5, 3, joined);
    fetch.first(mark);
    expect(fetch.page(said(1, 3)).next).toBe('CHATHISTORY AFTER #rust msgid=m3 2');
    expect(fetch.page(said(4, 2))).toEqual({ items: said(4, 2), incomplete: true });
  });

  it('a refusal after a page has come in leaves the room half told (it must be told); a refused first request does not', () => {
    const first = new HistoryFetch('#rust', 100, 3, joined);
    first.first(mark);
    expect(first.refused()).toBe(false);
    const later = new HistoryFetch('#rust', 100, 3, joined);
    later.first(mark);
    later.page(said(1, 3));
    expect(later.refused()).toBe(true);
  });

  it('stops at the listener\'s own join: what followed it, the listener saw live', () => {
    const fetch = new HistoryFetch('#rust', 100, 3, joined);
    fetch.first(mark);
    const ownJoin = item('@time=2026-11-28T03:00:00.000Z;msgid=join :bridge!b@h JOIN #rust');
    const after = item('@time=2026-11-28T03:00:00.000Z;msgid=m9 :alice!a@h PRIVMSG #rust :said as it joined');
    expect(fetch.page([...said(1, 1), ownJoin, after])).toEqual({ items: said(1, 1), incomplete: false });
  });

  it('without the join\'s msgid, stops at the first item said after the join\'s time', () => {
    const fetch = new HistoryFetch('#rust', 100, 3, { time: Date.UTC(2026, 10, 28, 2, 0, 2) });
    fetch.first(mark);
    expect(fetch.page(said(1, 3))).toEqual({ items: said(1, 2), incomplete: false });
  });

  it('pages on after the last item\'s time when it has no msgid', () => {
    const fetch = new HistoryFetch('#rust', 100, 2, joined);
    fetch.first(mark);
    const page = [...said(1, 1), item('@time=2026-11-28T02:00:02.000Z :bob!b@h JOIN #rust')];
    expect(fetch.page(page).next).toBe('CHATHISTORY AFTER #rust timestamp=2026-11-28T02:00:02.000Z 2');
  });
});

describe('history marks', () => {
  it('only moves forward, by folded channel name, and writes only when something changed', () => {
    const kv = memoryKv();
    const marks = new HistoryMarks(kv, 'history-marks:test');
    marks.seen('#Rust', 2000, 'b');
    marks.seen('#rust', 1000, 'a'); // reported later, said earlier
    expect(marks.get('#RUST')).toEqual({ time: 2000, msgid: 'b' });
    marks.flush();
    marks.flush();
    expect(kv.writes).toBe(1);
    const reloaded = new HistoryMarks(kv, 'history-marks:test');
    expect(reloaded.get('#rust')).toEqual({ time: 2000, msgid: 'b' });
    expect(reloaded.get('#go')).toBeUndefined();
  });

  it('forgets the marks of channels no longer bridged, and stores that', () => {
    const kv = memoryKv();
    const marks = new HistoryMarks(kv, 'history-marks:test');
    marks.seen('#rust', 1000);
    marks.seen('#go', 1000);
    marks.flush();
    marks.keepOnly(new Set(['#rust']));
    marks.flush();
    const reloaded = new HistoryMarks(kv, 'history-marks:test');
    expect(reloaded.get('#rust')).toEqual({ time: 1000 });
    expect(reloaded.get('#go')).toBeUndefined();
  });

  it('starts empty from a stored value it cannot read', () => {
    const kv = memoryKv();
    kv.data.set('history-marks:test', '{not json');
    expect(new HistoryMarks(kv, 'history-marks:test').get('#rust')).toBeUndefined();
    kv.data.set('history-marks:test', JSON.stringify({ '#rust': { t: 'soon' }, '#go': { t: 5 } }));
    const marks = new HistoryMarks(kv, 'history-marks:test');
    expect(marks.get('#rust')).toBeUndefined();
    expect(marks.get('#go')).toEqual({ time: 5 });
  });
});

describe('reading a chathistory batch', () => {
  const answer = [
    '@time=2026-11-28T02:49:09.000Z :irc.test BATCH +h1 chathistory #rust',
    '@batch=h1;time=2026-11-28T02:49:01.000Z;msgid=m1 :alice!a@h PRIVMSG #rust :first',
    '@batch=h1;time=2026-11-28T02:49:02.000Z :bob!b@h JOIN #rust',
    '@batch=h1;time=2026-11-28T02:49:03.000Z;msgid=m2 :bob!b@h BATCH +ml draft/multiline #rust',
    '@batch=ml :bob!b@h PRIVMSG #rust :two',
    '@batch=ml;draft/multiline-concat :bob!b@h PRIVMSG #rust :lines',
    '@batch=ml :bob!b@h PRIVMSG #rust :and more',
    '@batch=h1 :irc.test BATCH -ml',
    '@batch=h1;time=2026-11-28T02:49:04.000Z;msgid=m3 :carol!c@h PRIVMSG #rust :\x01ACTION waves\x01',
    '@batch=h1;time=2026-11-28T02:49:05.000Z;msgid=m4 :dave!d@h NOTICE #rust :a notice',
    ':irc.test BATCH -h1',
  ];

  it('takes every line of the batch, and gives its messages in order once it ends', () => {
    const got: { target: string; items: HistoryItem[] }[] = [];
    const batches = new HistoryBatches((target, items) => got.push({ target, items }));
    const live = '@time=2026-11-28T02:49:10.000Z;msgid=m9 :erin!e@h PRIVMSG #rust :live';
    for (const line of answer) expect(batches.take(`${line}\r\n`)).toBe(true);
    expect(batches.take(`${live}\r\n`)).toBe(false); // not in a history batch: for the listener's usual path
    expect(got).toHaveLength(1);
    expect(got[0]!.target).toBe('#rust');
    const messages = got[0]!.items.map(historyMessage);
    expect(messages.map((m) => m && [m.nick, m.msgtype, m.text, m.tags['msgid']])).toEqual([
      ['alice', 'm.text', 'first', 'm1'],
      undefined, // the JOIN (draft/event-playback): not a message
      ['bob', 'm.text', 'twolines\nand more', 'm2'], // concat: joined to the line before
      ['carol', 'm.emote', 'waves', 'm3'],
      ['dave', 'm.notice', 'a notice', 'm4'],
    ]);
    expect(messages[2]!.tags['time']).toBe('2026-11-28T02:49:03.000Z');
  });

  it('takes every history batch, asked for or not (whether it is awaited is for the listener to say)', () => {
    const got: string[] = [];
    const batches = new HistoryBatches((target) => got.push(target));
    for (const line of answer) expect(batches.take(`${line}\r\n`)).toBe(true);
    expect(batches.take(`${answer[0]!.replace(' chathistory ', ' draft/chathistory ')}\r\n`)).toBe(true);
    expect(batches.take(`@batch=h1;msgid=x :alice!a@h PRIVMSG #rust :in the draft-named batch\r\n`)).toBe(true);
    expect(batches.take(':irc.test BATCH -h1\r\n')).toBe(true);
    expect(got).toEqual(['#rust', '#rust']);
    expect(batches.take(':irc.test BATCH +ml draft/multiline #rust\r\n')).toBe(false); // another batch: not ours
  });

  it('drops a batch cut off by a disconnect', () => {
    const got: string[] = [];
    const batches = new HistoryBatches((target) => got.push(target));
    for (const line of answer.slice(0, 3)) batches.take(line);
    batches.reset();
    expect(batches.take(answer[3]!)).toBe(false);
    expect(batches.take(answer[answer.length - 1]!)).toBe(false);
    expect(got).toEqual([]);
  });
});

describe('a reaction among the fetched lines', () => {
  it('is a channel TAGMSG with a react tag and the msgid it answers', () => {
    expect(historyReaction(item('@time=2026-11-28T02:00:01.000Z;msgid=r1;+draft/react=🎉;+draft/reply=m1 :alice!a@h TAGMSG #rust')))
      .toEqual({ nick: 'alice', target: '#rust', key: '🎉', replyTo: 'm1', tags: expect.objectContaining({ msgid: 'r1', '+draft/react': '🎉' }) });
    expect(historyReaction(item('@msgid=r2;+react=👍;+reply=m1 :bob!b@h TAGMSG #rust'))).toMatchObject({ key: '👍', replyTo: 'm1' });
  });

  it.each([
    ['no msgid it answers', '@msgid=r1;+draft/react=🎉 :alice!a@h TAGMSG #rust'],
    ['no reaction (typing)', '@msgid=r1;+typing=active;+draft/reply=m1 :alice!a@h TAGMSG #rust'],
    ['to a nick, not a channel', '@msgid=r1;+draft/react=🎉;+draft/reply=m1 :alice!a@h TAGMSG bob'],
    ['a PRIVMSG', '@msgid=r1;+draft/react=🎉;+draft/reply=m1 :alice!a@h PRIVMSG #rust :hi'],
  ])('is not one with %s', (_, raw) => {
    expect(historyReaction(item(raw))).toBeUndefined();
  });
});
