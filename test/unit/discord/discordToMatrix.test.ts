import { describe, expect, it } from 'vitest';
import {
  discordToMatrix, embedText, formatTimestamp, msgtypeFor, parseDiscordMarkdown, pollResultText, pollText, reactionKeyToMatrix, type DiscordToMatrixResolver, type MatrixText,
} from '../../../packages/discord/src/convert/index.js';

const resolver: DiscordToMatrixResolver = {
  user: (id) => (id === '111' ? { userId: '@discord_111:example.org', name: 'Bobby' } : id === '999' ? { name: 'bridge-bot' } : undefined),
  role: (id) => (id === '222' ? { name: 'mods', color: 0xff0000 } : id === '223' ? { name: 'plain' } : undefined),
  channel: (id) => (id === '333' ? { name: 'general', room: '!room:example.org' } : id === '334' ? { name: 'secret' } : undefined),
  emoji: (e) => (e.id === '444' ? 'mxc://example.org/party' : undefined),
};

describe('discordToMatrix: formatting', () => {
  it.each<[string, string, MatrixText]>([
    ['plain text stays plain', 'hello world', { body: 'hello world' }],
    ['empty', '', { body: '' }],
    ['HTML-looking text is not formatted and is escaped when formatting exists', '<b>not bold</b>', { body: '<b>not bold</b>' }],
    ['bold', '**bold** text', { body: '**bold** text', formattedBody: '<strong>bold</strong> text' }],
    ['italic with stars', '*it*', { body: '*it*', formattedBody: '<em>it</em>' }],
    ['italic with underscores', '_it_', { body: '*it*', formattedBody: '<em>it</em>' }],
    ['snake_case is not italic', 'a snake_case_name here', { body: 'a snake_case_name here' }],
    ['underline', '__u__', { body: '__u__', formattedBody: '<u>u</u>' }],
    ['bold italic', '***both***', { body: '***both***', formattedBody: '<em><strong>both</strong></em>' }],
    // simple-markdown's rules: an escaped star does not end italics; the longest of bold and italics wins
    ['an escaped star inside italics', '*a \\* b*', { body: '*a * b*', formattedBody: '<em>a * b</em>' }],
    ['italics holding bold at its start', '***x**y*', { body: '***x**y*', formattedBody: '<em><strong>x</strong>y</em>' }],
    ['underline italic', '__*ui*__', { body: '__*ui*__', formattedBody: '<u><em>ui</em></u>' }],
    ['strikethrough', '~~no~~', { body: '~~no~~', formattedBody: '<del>no</del>' }],
    ['spoiler', 'the end: ||he dies||', { body: 'the end: ||he dies||', formattedBody: 'the end: <span data-mx-spoiler>he dies</span>' }],
    ['inline code keeps markdown literal', '`**x** <y>`', { body: '`**x** <y>`', formattedBody: '<code>**x** &lt;y&gt;</code>' }],
    ['double-backtick code with a backtick', '`` a`b ``', { body: '`a`b`', formattedBody: '<code>a`b</code>' }],
    [
      'code block with a language',
      '```js\nconst a = "<b>";\n```',
      { body: '```js\nconst a = "<b>";\n```', formattedBody: '<pre><code class="language-js">const a = &quot;&lt;b&gt;&quot;;\n</code></pre>' },
    ],
    ['code block without a language', '```\nplain\n```', { body: '```\nplain\n```', formattedBody: '<pre><code>plain\n</code></pre>' }],
    ['code block mid-line', 'see ```x``` here', { body: 'see ```\nx\n``` here', formattedBody: 'see <pre><code>x\n</code></pre> here' }],
    ['markdown inside code blocks is literal', '```\n**no**\n```', { body: '```\n**no**\n```', formattedBody: '<pre><code>**no**\n</code></pre>' }],
    ['escapes', '\\*not italic\\* and \\_no\\_', { body: '*not italic* and _no_' }],
    ['a lone star', '5 * 3 = 15', { body: '5 * 3 = 15' }],
    ['block quote', '> quoted\n> twice\nafter', { body: '> quoted\n> twice\nafter', formattedBody: '<blockquote>quoted<br>twice</blockquote>after' }],
    ['quote needs a space', '>not a quote', { body: '>not a quote' }],
    ['multi-line quote', '>>> all\nof it', { body: '> all\n> of it', formattedBody: '<blockquote>all<br>of it</blockquote>' }],
    ['quote only at line start', 'a > b', { body: 'a > b' }],
    ['heading', '# Title\ntext', { body: '# Title\ntext', formattedBody: '<h1>Title</h1>text' }],
    ['heading only at line start', 'a # b', { body: 'a # b' }],
    ['subtext', '-# small print', { body: '-# small print' }],
    ['list', '- one\n- two', { body: '- one\n- two', formattedBody: '<ul><li>one</li><li>two</li></ul>' }],
    ['ordered list', '3. three\n4. four', { body: '3. three\n4. four', formattedBody: '<ol start="3"><li>three</li><li>four</li></ol>' }],
    ['line breaks', 'a\nb', { body: 'a\nb' }],
    ['formatting across lines', '**a\nb**', { body: '**a\nb**', formattedBody: '<strong>a<br>b</strong>' }],
  ])('%s', (_name, input, expected) => {
    expect(discordToMatrix(input, resolver)).toEqual(expected);
  });

  it('writes a mention inside a masked link as its text: a link cannot hold a pill (found by convert-fuzz)', () => {
    const bob = { user: () => ({ userId: '@bob:hs', name: 'Bob' }) };
    expect(discordToMatrix('[<@111>](https://e.org) and <@111>', bob)).toEqual({
      body: 'Bob (https://e.org) and Bob',
      formattedBody: '<a href="https://e.org">Bob</a> and <a href="https://matrix.to/#/@bob:hs">Bob</a>',
    });
  });

  it('gives markers nested too deep to parse as the text they are, rather than throwing', () => {
    const content = `${'*'.repeat(20_000)}x${'*'.repeat(20_000)}`;
    expect(discordToMatrix(content, resolver)).toEqual({ body: content });
  });
});

describe('discordToMatrix: links', () => {
  it.each<[string, string, MatrixText]>([
    ['a bare URL stays plain', 'see https://example.org/a_b_c', { body: 'see https://example.org/a_b_c', formattedBody: undefined as never }],
    ['URL punctuation at the end is not part of it', 'go to https://example.org.', { body: 'go to https://example.org.' }],
    ['a masked link', '[the docs](https://example.org/docs)', { body: 'the docs (https://example.org/docs)', formattedBody: '<a href="https://example.org/docs">the docs</a>' }],
    ['a masked link with formatting', '[**docs**](<https://example.org>)', { body: '**docs** (https://example.org)', formattedBody: '<a href="https://example.org"><strong>docs</strong></a>' }],
    ['angle brackets suppress the embed, not the link', '<https://example.org>', { body: 'https://example.org' }],
    ['no javascript: links', '[x](javascript:alert(1))', { body: '[x](javascript:alert(1))' }],
    ['a Wikipedia URL keeps its parentheses', 'https://en.wikipedia.org/wiki/Foo_(bar)', { body: 'https://en.wikipedia.org/wiki/Foo_(bar)' }],
  ])('%s', (_name, input, expected) => {
    const out = discordToMatrix(input, resolver);
    expect(out.body).toBe(expected.body);
    if (expected.formattedBody) expect(out.formattedBody).toBe(expected.formattedBody);
    else expect(out.formattedBody).toBeUndefined();
  });

  // Discord warns before opening a masked link; Matrix clients do not, nor show where it goes on
  // phones: text naming another site is shown as text, then the real URL as the link
  it.each<[string, string, MatrixText]>([
    ['a URL for text', '[https://paypal.com](https://evil.example/login)', {
      body: 'https://paypal.com (https://evil.example/login)',
      formattedBody: 'https://paypal.com (<a href="https://evil.example/login">https://evil.example/login</a>)',
    }],
    ['a host name in the text', '[Log in to **PayPal.com**](https://evil.example)', {
      body: 'Log in to **PayPal.com** (https://evil.example)',
      formattedBody: 'Log in to <strong>PayPal.com</strong> (<a href="https://evil.example">https://evil.example</a>)',
    }],
    ['a host name written with an ideographic dot', '[paypal。com](https://evil.example)', {
      body: 'paypal。com (https://evil.example)', formattedBody: 'paypal。com (<a href="https://evil.example">https://evil.example</a>)',
    }],
    ['a URL with user info before the host', '[https://paypal.com@evil.example](https://evil.example)', {
      body: 'https://paypal.com@evil.example (https://evil.example)',
      formattedBody: 'https://paypal.com@evil.example (<a href="https://evil.example">https://evil.example</a>)',
    }],
    ['an IP address', '[10.0.0.1](https://evil.example)', { body: '10.0.0.1 (https://evil.example)', formattedBody: '10.0.0.1 (<a href="https://evil.example">https://evil.example</a>)' }],
    ['the same site stays a link (case and www. aside)', '[PayPal.com](https://www.paypal.com/x)', {
      body: 'PayPal.com (https://www.paypal.com/x)', formattedBody: '<a href="https://www.paypal.com/x">PayPal.com</a>',
    }],
    ['a URL of the same site with a file in its path stays a link', '[https://x.org/a/b.php](https://x.org/a/b.php?q=1)', {
      body: 'https://x.org/a/b.php (https://x.org/a/b.php?q=1)', formattedBody: '<a href="https://x.org/a/b.php?q=1">https://x.org/a/b.php</a>',
    }],
    ['text with dots that name no host stays a link', '[e.g. v1.2](https://x.org)', { body: 'e.g. v1.2 (https://x.org)', formattedBody: '<a href="https://x.org">e.g. v1.2</a>' }],
  ])('a masked link whose text names another site: %s', (_name, input, expected) => {
    expect(discordToMatrix(input, resolver)).toEqual(expected);
  });

  // A host name hidden from the check by what does not show (zero-width spaces, word joiners...) or
  // by a character that only looks like a dot: read as people read it, and text holding anything
  // invisible is shown with the real URL whatever it reads as (fails closed)
  it.each<[string, string]>([
    ['zero-width spaces around the dot', 'good\u200b.\u200bcom'],
    ['a zero-width space after the dot', 'good.\u200bcom'],
    ['a word joiner before the dot', 'good\u2060.com'],
    ['a soft hyphen in a label', 'go\u00adod.com'],
    ['a right-to-left override', 'moc.doog\u202e'],
    ['a one-dot leader for the dot', 'good\u2024com'],
    ['a Lisu tone letter for the dot', 'good\ua4f8com'],
    ['a word separator middle dot for the dot', 'good\u2e33com'],
    ['a middle dot for the dot', 'good\u00b7com'],
    ['a Syriac full stop for the dot', 'good\u0701com'],
    ['a hyphenation point for the dot', 'good\u2027com'],
    ['a small full stop for the dot', 'good\ufe52com'],
    ['full-width letters', '\uff27\uff2f\uff2f\uff24.com'],
  ])('a masked link whose text hides the site it names: %s', (_name, text) => {
    expect(discordToMatrix(`[${text}](https://evil.example)`, resolver)).toEqual({
      body: `${text} (https://evil.example)`, formattedBody: `${text} (<a href="https://evil.example">https://evil.example</a>)`,
    });
  });

  it.each<[string, string, string]>([
    ['an invisible character alone, naming no site', '[the\u200bdocs](https://x.org)', 'the\u200bdocs (<a href="https://x.org">https://x.org</a>)'],
    ['the emoji selector and joiners of emoji are no hiding place', '[\u2764\ufe0f the docs \ud83d\udc69\u200d\ud83d\udcbb](https://x.org)',
      '<a href="https://x.org">\u2764\ufe0f the docs \ud83d\udc69\u200d\ud83d\udcbb</a>'],
    ['a middle dot between words names no site', '[docs \u00b7 API](https://x.org)', '<a href="https://x.org">docs \u00b7 API</a>'],
    ['a look-alike dot in the name of the site it goes to', '[x\u2024org](https://x.org)', '<a href="https://x.org">x\u2024org</a>'],
  ])('a masked link with unusual characters: %s', (_name, input, formattedBody) => {
    expect(discordToMatrix(input, resolver).formattedBody).toBe(formattedBody);
  });

  it('does not treat underscores in URLs as italics', () => {
    expect(discordToMatrix('_see_ https://example.org/_a_ ok', resolver)).toEqual({
      body: '*see* https://example.org/_a_ ok',
      formattedBody: '<em>see</em> <a href="https://example.org/_a_">https://example.org/_a_</a> ok',
    });
  });
});

describe('discordToMatrix: mentions and emojis', () => {
  it.each<[string, string, MatrixText]>([
    ['a user becomes a pill of their ghost', 'hi <@111>', { body: 'hi Bobby', formattedBody: 'hi <a href="https://matrix.to/#/@discord_111:example.org">Bobby</a>' }],
    ['the old nickname form', 'hi <@!111>', { body: 'hi Bobby', formattedBody: 'hi <a href="https://matrix.to/#/@discord_111:example.org">Bobby</a>' }],
    ['the bot itself is a name, not a pill', '<@999> help', { body: '@bridge-bot help' }],
    ['an unknown user', '<@555>', { body: '@555' }],
    ['a coloured role', '<@&222> look', { body: '@mods look', formattedBody: '<font data-mx-color="#ff0000">@mods</font> look' }],
    ['a role without colour', '<@&223>', { body: '@plain' }],
    ['a deleted role', '<@&777>', { body: '@deleted-role' }],
    ['a bridged channel becomes a room pill', 'in <#333>', { body: 'in #general', formattedBody: 'in <a href="https://matrix.to/#/!room:example.org">#general</a>' }],
    ['an unbridged channel is its name', 'in <#334>', { body: 'in #secret' }],
    ['an unknown channel', '<#888>', { body: '#unknown-channel' }],
    [
      'a custom emoji becomes an inline image',
      'yay <:party:444>',
      { body: 'yay :party:', formattedBody: 'yay <img data-mx-emoticon src="mxc://example.org/party" alt=":party:" title=":party:" height="32">' },
    ],
    ['an emoji that could not be uploaded is its name', '<a:dance:445>', { body: ':dance:' }],
    ['@everyone is just text', '@everyone and @here', { body: '@everyone and @here' }],
    ['a timestamp', '<t:0:d>', { body: '1970-01-01' }],
    ['a mention inside bold', '**<@111>**', { body: '**Bobby**', formattedBody: '<strong><a href="https://matrix.to/#/@discord_111:example.org">Bobby</a></strong>' }],
    ['a mention inside code stays literal', '`<@111>`', { body: '`<@111>`', formattedBody: '<code>&lt;@111&gt;</code>' }],
  ])('%s', (_name, input, expected) => {
    expect(discordToMatrix(input, resolver)).toEqual(expected);
  });

  it('escapes names that look like HTML', () => {
    const out = discordToMatrix('<@111>', { user: () => ({ userId: '@discord_111:x', name: '<img src=x>' }) });
    expect(out.formattedBody).toBe('<a href="https://matrix.to/#/@discord_111:x">&lt;img src=x&gt;</a>');
  });
});

describe('discordToMatrix helpers', () => {
  it('formats timestamps in UTC by style', () => {
    expect(formatTimestamp(1_700_000_000)).toBe('14 Nov 2023 22:13 UTC');
    expect(formatTimestamp(1_700_000_000, 't')).toBe('22:13 UTC');
    expect(formatTimestamp(1_700_000_000, 'T')).toBe('22:13:20 UTC');
    expect(formatTimestamp(1_700_000_000, 'D')).toBe('14 Nov 2023');
  });

  it('picks the msgtype of a file from its content type', () => {
    expect(msgtypeFor('image/png')).toBe('m.image');
    expect(msgtypeFor('video/mp4')).toBe('m.video');
    expect(msgtypeFor('audio/ogg')).toBe('m.audio');
    expect(msgtypeFor('text/plain; charset=utf-8')).toBe('m.file');
    expect(msgtypeFor(undefined)).toBe('m.file');
  });

  it('renders an embed as markdown text', () => {
    expect(embedText({ title: 'Build passed', url: 'https://ci.example/1', description: 'all green', author: { name: 'CI' }, fields: [{ name: 'Branch', value: 'main' }] }))
      .toBe('**CI**\n**[Build passed](https://ci.example/1)**\nall green\n**Branch**\nmain');
  });

  it('writes reaction emoji the way Matrix clients do, so reactions count together', () => {
    const cases: [string, string][] = [
      ['\u2764', '\u2764\uFE0F'], // ❤ → ❤️
      ['\u2764\uFE0F', '\u2764\uFE0F'], // already qualified: unchanged
      ['\u{1F44D}', '\u{1F44D}'], // 👍 shows as emoji already
      ['\u261D\u{1F3FB}', '\u261D\u{1F3FB}'], // ☝🏻: a skin tone makes it an emoji
      ['1\u20E3', '1\uFE0F\u20E3'], // keycap 1
      ['#\u20E3', '#\uFE0F\u20E3'],
      ['\u2764\u200D\u{1F525}', '\u2764\uFE0F\u200D\u{1F525}'], // ❤‍🔥
      ['\u{1F3F3}\u200D\u{1F308}', '\u{1F3F3}\uFE0F\u200D\u{1F308}'], // rainbow flag
      ['\u{1F441}\u200D\u{1F5E8}', '\u{1F441}\uFE0F\u200D\u{1F5E8}\uFE0F'], // eye in speech bubble: both parts
      ['\u2122', '\u2122\uFE0F'], ['\u2705', '\u2705'], ['\u{1F1EB}\u{1F1F7}', '\u{1F1EB}\u{1F1F7}'],
      ['\u263A\uFE0E', '\u263A\uFE0E'], // asked to show as text: left so
    ];
    for (const [from, to] of cases) expect(reactionKeyToMatrix(from), JSON.stringify(from)).toBe(to);
  });

  it('never loses text it cannot parse', () => {
    for (const s of ['**unclosed', '||half', '~~', '`', '```', '[a](', '<@', '<:x:', '> ', '*', '_', '\\']) {
      expect(discordToMatrix(s).body.replace(/\s/g, '')).toBe(s.replace(/\s/g, '').replace(/^\\$/, '\\'));
    }
  });

  it('parses to a tree', () => {
    expect(parseDiscordMarkdown('a **b** <@1>')).toEqual([{ t: 'text', v: 'a ' }, { t: 'bold', c: [{ t: 'text', v: 'b' }] }, { t: 'text', v: ' ' }, { t: 'user', id: '1' }]);
  });
});

describe('Discord polls as text', () => {
  const answers = (...a: { text: string | null; emoji?: { id: string | null; name: string | null } | null }[]) => new Map(a.map((x, i) => [i + 1, x]));

  it('numbers the answers, with unicode emoji, custom ones by name, and says when several may be chosen', () => {
    expect(pollText({ question: { text: 'Lunch?' }, allowMultiselect: false, answers: answers({ text: 'Pizza', emoji: { id: null, name: '🍕' } }, { text: 'Soup', emoji: { id: '123', name: 'soup' } }, { text: 'Nothing' }) }))
      .toBe('**Poll:** Lunch?\n1. 🍕 Pizza\n2. :soup: Soup\n3. Nothing');
    expect(pollText({ question: { text: 'Days?' }, allowMultiselect: true, answers: answers({ text: null, emoji: { id: null, name: '👍' } }) }))
      .toBe('**Poll:** Days? (choose any number)\n1. 👍');
  });

  it('reads the result embed\'s named fields', () => {
    const f = (name: string, value: string) => ({ name, value });
    expect(pollResultText([f('poll_question_text', 'Lunch?'), f('victor_answer_text', 'Pizza'), f('victor_answer_votes', '2'), f('total_votes', '3')]))
      .toBe('The poll "Lunch?" has ended. Top answer: Pizza (2 of 3 votes).');
    expect(pollResultText([f('poll_question_text', 'Lunch?'), f('total_votes', '0')])).toBe('The poll "Lunch?" has ended. Nobody voted.');
    expect(pollResultText([f('poll_question_text', 'Lunch?'), f('total_votes', '4')])).toBe('The poll "Lunch?" has ended. It was a tie.');
    expect(pollResultText([])).toBe('The poll has ended. Nobody voted.');
  });
});
