import { describe, expect, it } from 'vitest';
import { extensibleText, locationText, pollEndText, pollStartText } from '../../../packages/core/src/bridge/matrixText.js';

/** A poll as Element sends it (MSC3381, unstable names). */
const elementPoll = {
  'org.matrix.msc3381.poll.start': {
    kind: 'org.matrix.msc3381.poll.disclosed',
    max_selections: 1,
    question: { 'org.matrix.msc1767.text': 'Lunch?', body: 'Lunch?', msgtype: 'm.text' },
    answers: [
      { id: 'a', 'org.matrix.msc1767.text': 'Pizza' },
      { id: 'b', 'org.matrix.msc1767.text': 'Sushi' },
    ],
  },
  'org.matrix.msc1767.text': 'Lunch?\n1. Pizza\n2. Sushi',
};

describe('pollStartText', () => {
  it.each([
    ['Element (unstable names)', elementPoll, 'Poll: Lunch? 1. Pizza · 2. Sushi'],
    ['extensible events (m.poll, m.text lists), html skipped for plain', {
      'm.poll': {
        question: { 'm.text': [{ mimetype: 'text/html', body: '<b>Where?</b>' }, { body: 'Where?' }] },
        max_selections: 2,
        answers: [{ 'm.id': 'x', 'm.text': [{ body: 'Here' }] }, { 'm.id': 'y', 'm.text': [{ body: 'There' }] }, { 'm.id': 'z', 'm.text': [{ body: 'Nowhere' }] }],
      },
    }, 'Poll: Where? (choose up to 2) 1. Here · 2. There · 3. Nowhere'],
    ['more selections allowed than answers', {
      'org.matrix.msc3381.poll.start': { question: { body: 'Q' }, max_selections: 9, answers: [{ body: 'a' }, { body: 'b' }] },
    }, 'Poll: Q (choose up to 2) 1. a · 2. b'],
    ['no answers', { 'org.matrix.msc3381.poll.start': { question: { body: 'Q' } } }, 'Poll: Q'],
    ['line breaks and controls flattened', {
      'org.matrix.msc3381.poll.start': { question: { body: 'Q\r\nPRIVMSG #x :hi\0' }, answers: [{ body: 'a\nb' }, 'junk', { body: '   ' }] },
    }, 'Poll: Q PRIVMSG #x :hi 1. a b'],
  ])('%s', (_name, content, text) => {
    expect(pollStartText(content as Record<string, unknown>)).toBe(text);
  });

  it('caps the question, each answer and the number of answers', () => {
    const text = pollStartText({
      'org.matrix.msc3381.poll.start': {
        question: { body: 'q'.repeat(1000) },
        answers: Array.from({ length: 25 }, (_, i) => ({ body: `${i}`.repeat(500) })),
      },
    })!;
    expect(text).toContain(`Poll: ${'q'.repeat(299)}… 1. ${'0'.repeat(99)}… · 2. `);
    expect(text).toContain(' · 20. ');
    expect(text).not.toContain(' · 21. ');
    expect(text.endsWith(' · (5 more)')).toBe(true);
    expect(text.length).toBeLessThan(300 + 20 * 110 + 40);
  });

  it.each([
    ['no poll block', { body: 'hello' }],
    ['a poll block that is not an object', { 'org.matrix.msc3381.poll.start': 'x' }],
    ['no question', { 'org.matrix.msc3381.poll.start': { answers: [{ body: 'a' }] } }],
    ['a blank question', { 'm.poll': { question: { 'm.text': [{ body: ' \n ' }] } } }],
    ['a question of the wrong type', { 'm.poll': { question: { 'm.text': 42 } } }],
  ])('undefined for %s', (_name, content) => {
    expect(pollStartText(content as Record<string, unknown>)).toBeUndefined();
  });
});

describe('pollEndText', () => {
  it('says what the client put in the end event', () => {
    expect(pollEndText({ 'org.matrix.msc1767.text': 'The poll has ended. Top answer: Pizza' })).toBe('The poll has ended. Top answer: Pizza');
    expect(pollEndText({ 'm.text': [{ body: 'Closed\nat noon' }] })).toBe('Closed at noon');
  });
  it('says the poll ended when the client said nothing usable', () => {
    expect(pollEndText({})).toBe('The poll has ended.');
    expect(pollEndText({ 'org.matrix.msc1767.text': '  ' })).toBe('The poll has ended.');
    expect(pollEndText({ 'org.matrix.msc1767.text': 7 })).toBe('The poll has ended.');
  });
});

describe('extensibleText', () => {
  it('prefers the unstable string, then m.text, then body', () => {
    expect(extensibleText({ 'org.matrix.msc1767.text': 'a', 'm.text': 'b', body: 'c' })).toBe('a');
    expect(extensibleText({ 'm.text': 'b', body: 'c' })).toBe('b');
    expect(extensibleText({ body: 'c' })).toBe('c');
    expect(extensibleText({ 'm.text': [{ body: 7 }, { mimetype: 'text/html', body: '<i>h</i>' }] })).toBe('<i>h</i>');
    expect(extensibleText(['x'])).toBeUndefined();
    expect(extensibleText(null)).toBeUndefined();
  });
});

describe('locationText', () => {
  it.each([
    ['Element (geo_uri and MSC3488 block)', {
      msgtype: 'm.location', body: 'Location geo:51.5008,0.1247;u=35 at 2026-11-28', geo_uri: 'geo:51.5008,0.1247;u=35',
      'org.matrix.msc3488.location': { uri: 'geo:51.5008,0.1247;u=35', description: 'Big Ben' },
    }, 'Location: Big Ben https://www.openstreetmap.org/?mlat=51.5008&mlon=0.1247#map=16/51.5008/0.1247'],
    ['only geo_uri, negative and with altitude', { geo_uri: 'geo:-33.8568,-151.2153,12' },
      'Location: https://www.openstreetmap.org/?mlat=-33.8568&mlon=-151.2153#map=16/-33.8568/-151.2153'],
    ['stable m.location block', { 'm.location': { uri: 'GEO:10,20' } }, 'Location: https://www.openstreetmap.org/?mlat=10&mlon=20#map=16/10/20'],
  ])('%s', (_name, content, text) => {
    expect(locationText(content as Record<string, unknown>)).toBe(text);
  });

  it.each([
    ['no URI', { body: 'somewhere' }],
    ['not a geo URI', { geo_uri: 'https://evil.example/?a=1' }],
    ['latitude out of range', { geo_uri: 'geo:91,0' }],
    ['longitude out of range', { geo_uri: 'geo:0,181' }],
    ['something after the coordinates', { geo_uri: 'geo:1,2 PRIVMSG' }],
  ])('undefined for %s', (_name, content) => {
    expect(locationText(content as Record<string, unknown>)).toBeUndefined();
  });
});
