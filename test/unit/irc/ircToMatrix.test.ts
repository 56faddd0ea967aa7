import { describe, expect, it, vi } from 'vitest';
import { ircToMatrix, type IrcMention, type MatrixText } from '../../../packages/irc/src/convert/index.js';

describe('ircToMatrix formatting', () => {
  it.each<[string, string, MatrixText]>([
    ['plain text stays plain', 'hello world', { body: 'hello world' }],
    ['empty', '', { body: '' }],
    ['HTML in plain text is only escaped when there is HTML', '<script>alert(1)</script>', { body: '<script>alert(1)</script>' }],
    [
      'HTML in formatted text is escaped',
      '\x02<script>alert("x")</script>\x02',
      { body: '<script>alert("x")</script>', formattedBody: '<b>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</b>' },
    ],
    ['ampersand and apostrophe', "\x1DTom & Jerry's", { body: "Tom & Jerry's", formattedBody: '<i>Tom &amp; Jerry&#39;s</i>' }],
    ['bold', '\x02bold\x02 text', { body: 'bold text', formattedBody: '<b>bold</b> text' }],
    ['italic', '\x1Dit\x1D', { body: 'it', formattedBody: '<i>it</i>' }],
    ['underline', '\x1Fu\x1F', { body: 'u', formattedBody: '<u>u</u>' }],
    ['strikethrough', '\x1Eno\x1E', { body: 'no', formattedBody: '<del>no</del>' }],
    ['monospace', 'run \x11ls -l\x11', { body: 'run ls -l', formattedBody: 'run <code>ls -l</code>' }],
    [
      'overlapping styles keep shared tags open',
      '\x02bold \x1Dboth\x02 italic\x0F plain',
      { body: 'bold both italic plain', formattedBody: '<b>bold <i>both</i></b><i> italic</i> plain' },
    ],
    ['reset closes everything', '\x02\x1D\x1Fx\x0Fy', { body: 'xy', formattedBody: '<b><i><u>x</u></i></b>y' }],
    [
      'colour with background',
      '\x034,2red\x03 plain',
      { body: 'red plain', formattedBody: '<font data-mx-color="#ff0000" data-mx-bg-color="#00007f">red</font> plain' },
    ],
    ['a comma that is not a colour', '\x0312,hello', { body: ',hello', formattedBody: '<font data-mx-color="#0000fc">,hello</font>' }],
    ['hex colour', '\x04ff8800orange', { body: 'orange', formattedBody: '<font data-mx-color="#ff8800">orange</font>' }],
    ['colour and bold', '\x0304\x02x', { body: 'x', formattedBody: '<font data-mx-color="#ff0000"><b>x</b></font>' }],
    ['default colour is no formatting', '\x0399hi', { body: 'hi' }],
    ['reverse without colours shows nothing', '\x16x', { body: 'x' }],
    [
      'reverse swaps the colours',
      '\x16\x034,2x',
      { body: 'x', formattedBody: '<font data-mx-color="#00007f" data-mx-bg-color="#ff0000">x</font>' },
    ],
    ['toggles that cancel', '\x02\x02hi', { body: 'hi' }],
    ['stray control characters are dropped', 'a\x07b\x00c\rd', { body: 'abcd' }],
    ['formatting around nothing', 'x\x02\x02\x1D', { body: 'x' }],
    ['unicode survives', '\x02日本語 😀\x02', { body: '日本語 😀', formattedBody: '<b>日本語 😀</b>' }],
  ])('%s', (_name, input, expected) => {
    expect(ircToMatrix(input, {})).toEqual(expected);
  });

  // Text with line breaks is several IRC lines (a draft/multiline batch); formatting ends with each.
  it.each<[string, string, MatrixText]>([
    [
      'bold closed on the next line, as matrixToIrc writes <b>first<br>second</b> plain<br>third',
      '\x02first\n\x02second\x02 plain\nthird',
      { body: 'first\nsecond plain\nthird', formattedBody: '<b>first</b><br><b>second</b> plain<br>third' },
    ],
    ['bold left open ends with its line', '\x02bold line\nplain line', { body: 'bold line\nplain line', formattedBody: '<b>bold line</b><br>plain line' }],
    [
      'colour left open ends with its line',
      '\x0304red\n12 apples',
      { body: 'red\n12 apples', formattedBody: '<font data-mx-color="#ff0000">red</font><br>12 apples' },
    ],
    [
      'a code block: monospace opened on every line, a lone code on a blank one',
      '\x11def a():\n\x11    pass\n\x11\n\x11def b():',
      { body: 'def a():\n    pass\n\ndef b():', formattedBody: '<code>def a():</code><br><code>    pass</code><br><br><code>def b():</code>' },
    ],
    ['plain lines stay plain', 'one\ntwo', { body: 'one\ntwo' }],
    ['styles within a line still carry', '\x02a \x1Db\x02 c\nd', { body: 'a b c\nd', formattedBody: '<b>a <i>b</i></b><i> c</i><br>d' }],
  ])('lines: %s', (_name, input, expected) => {
    expect(ircToMatrix(input, {})).toEqual(expected);
  });

  it('never lets markup through, whatever the codes around it', () => {
    const hostile = '\x02<img src=x onerror=alert(1)>\x034,2"><a href="javascript:x">\x0F&amp;';
    const { formattedBody } = ircToMatrix(hostile, {});
    expect(formattedBody).toBe(
      // Colour is the outermost tag, so <b> is closed and reopened inside the new <font>.
      '<b>&lt;img src=x onerror=alert(1)&gt;</b><font data-mx-color="#ff0000" data-mx-bg-color="#00007f"><b>&quot;&gt;&lt;a href=&quot;javascript:x&quot;&gt;</b></font>&amp;amp;',
    );
    expect(formattedBody?.replace(/<\/?(b|font)[^>]*>/g, '')).not.toMatch(/[<>"']/);
  });

  it('handles a huge line', () => {
    const line = '\x02bold\x02 '.repeat(20_000);
    const { body, formattedBody } = ircToMatrix(line, {});
    expect(body).toBe('bold '.repeat(20_000));
    expect(formattedBody?.startsWith('<b>bold</b> <b>bold</b> ')).toBe(true);
  });
});

describe('ircToMatrix mentions', () => {
  const users: Record<string, IrcMention> = {
    alice: { userId: '@irc_alice:example.org', displayName: 'Alice (IRC)' },
    al: { userId: '@irc_al:example.org', displayName: 'Al' },
    'foo[m]': { userId: '@foo:matrix.org', displayName: 'Foo' },
    evil: { userId: '@evil:example.org', displayName: '<b>Evil</b> & "co"' },
    bob_: { userId: '@irc_bob_:example.org', displayName: 'bob_' },
  };
  // IRC nicks compare case-insensitively; the lookup is where that happens.
  const mentions = (word: string): IrcMention | undefined => users[word.toLowerCase()];
  const pill = (nick: string): string => {
    const u = users[nick] as IrcMention;
    return `<a href="https://matrix.to/#/${u.userId}">${u.displayName}</a>`;
  };

  it.each<[string, string, string | undefined]>([
    ['address at the start', 'alice: hi', `${pill('alice')}: hi`],
    ['address with a comma', 'alice, hi', `${pill('alice')}, hi`],
    ['any case', 'ALICE: hi', `${pill('alice')}: hi`],
    ['inside a sentence', 'ask alice!', `ask ${pill('alice')}!`],
    ['twice', 'alice? alice', `${pill('alice')}? ${pill('alice')}`],
    ['nick chars are word chars', 'foo[m]: hi', `${pill('foo[m]')}: hi`],
    ['underscore nick', 'thanks bob_', `thanks ${pill('bob_')}`],
    ['two different nicks', 'alice and bob_', `${pill('alice')} and ${pill('bob_')}`],
    ['not part of a longer word', 'malice aforethought', undefined],
    ['not when followed by a nick char', 'alice_ is away', undefined],
    ['not followed by more nick chars', 'foo[m]s', undefined],
    ['not a prefix with a dash', 'alice-bot says hi', undefined],
    ['not inside a URL', 'see https://example.org/alice?q=alice', undefined],
    ['an address before a URL that contains the nick', 'alice: https://x.y/alice', `${pill('alice')}: https://x.y/alice`],
    ['not inside www. links', 'www.alice.example', undefined],
    ['not in an e-mail address', 'mail alice@example.org', undefined],
    ['not in an e-mail address in brackets', 'mail <alice@example.org>', undefined],
    ['not in a URL after a dot', 'x.https://y.z/alice', undefined],
    ['not in a URL after an underscore', '_https://y.z/alice', undefined],
    ['not a channel name', 'join #alice', undefined],
    ['short nick at the start with a colon', 'al: ping', `${pill('al')}: ping`],
    ['short nick with a comma', 'al, ping', undefined],
    ['short nick in a sentence', 'ping al', undefined],
    ['short nick later in the line', 'hey al: ping', undefined],
    ['display name is escaped', 'evil: hi', '<a href="https://matrix.to/#/@evil:example.org">&lt;b&gt;Evil&lt;/b&gt; &amp; &quot;co&quot;</a>: hi'],
    ['mention inside formatting', '\x02alice\x02 is here', `<b>${pill('alice')}</b> is here`],
    ['mention across a style change takes the first style', '\x02ali\x02ce here', `<b>${pill('alice')}</b> here`],
    ['text around a mention is escaped', '<alice> & me', `&lt;${pill('alice')}&gt; &amp; me`],
  ])('%s', (_name, input, formattedBody) => {
    const result = ircToMatrix(input, { mentions });
    expect(result.body).toBe(input.replace(/[\x02]/g, ''));
    expect(result.formattedBody).toBe(formattedBody);
  });

  // A nick joined to `/`, `~` or `.`+letter is part of a path, file or host name: no ping.
  it.each<[string, string, string | undefined]>([
    ['host name', 'ssh alice.example.com', undefined],
    ['file name', 'open alice.txt', undefined],
    ['file name with a digit extension', 'unpack alice.7z', undefined],
    ['last part of a host name', 'ping mail.alice', undefined],
    ['end of a path', 'see example.org/alice', undefined],
    ['start of a path', 'cd alice/src', undefined],
    ['inside a path under home', 'cd ~/alice/src', undefined],
    ['a home directory', 'ls ~alice', undefined],
    ['a backup file', 'rm alice~', undefined],
    ['a Windows path', 'C:\\Users\\alice\\src', undefined],
    ['addressed with a colon', 'alice: hi', `${pill('alice')}: hi`],
    ['addressed with a comma', 'alice, hi', `${pill('alice')}, hi`],
    ['sentence end', 'hi alice.', `hi ${pill('alice')}.`],
    ['sentence end before more', 'thanks alice. bye', `thanks ${pill('alice')}. bye`],
    ['ellipsis after', 'alice...', `${pill('alice')}...`],
    ['ellipsis before', 'well...alice?', `well...${pill('alice')}?`],
    ['a dot before punctuation', '(ask alice.)', `(ask ${pill('alice')}.)`],
    ['in brackets', '(alice)', `(${pill('alice')})`],
    ['after an at sign', '@alice hi', `@${pill('alice')} hi`],
    ['possessive', "alice's turn", `${pill('alice')}&#39;s turn`],
  ])('names: %s', (_name, input, formattedBody) => {
    expect(ircToMatrix(input, { mentions })).toEqual({ body: input, ...(formattedBody !== undefined && { formattedBody }) });
  });

  it('reads a huge word without spaces in one pass (no URL or address scan from every position in it)', () => {
    // tried from every position, the URL and e-mail patterns took quadratic time: this line, minutes
    for (const word of ['a'.repeat(100_000), 'a.'.repeat(50_000), `${'x'.repeat(50_000)}@${'y'.repeat(50_000)}`]) {
      const line = `alice ${word} alice`;
      expect(ircToMatrix(line, { mentions }).formattedBody).toBe(`${pill('alice')} ${word} ${pill('alice')}`);
    }
  });

  it('looks each distinct word up once', () => {
    const lookup = vi.fn(mentions);
    ircToMatrix('alice alice bob_ alice', { mentions: lookup });
    expect(lookup.mock.calls.map((c) => c[0])).toEqual(['alice', 'bob_']);
  });

  it('percent-encodes odd user IDs in the link', () => {
    const result = ircToMatrix('weird: hi', { mentions: () => ({ userId: '@we ird"#?:example.org', displayName: 'W' }) });
    expect(result.formattedBody).toBe('<a href="https://matrix.to/#/@we%20ird%22%23%3F:example.org">W</a>: hi');
  });
});
