import { describe, expect, it } from 'vitest';
import { matrixToIrc, type MatrixMessageContent, type MatrixToIrcOptions } from '../../../packages/irc/src/convert/index.js';

const B = '\x02';
const I = '\x1D';
const U = '\x1F';
const S = '\x1E';
const M = '\x11';
const O = '\x0F';

const opts: MatrixToIrcOptions = {
  pillToNick: (userId) => ({ '@alice:example.org': 'alice', '@bob:example.org': 'bob', '@evil:example.org': 'evil\r\nQUIT' })[userId],
  roomPillToName: (room) => (room === '#room:example.org' || room === '!abc:example.org' ? '#irc-room' : undefined),
};
const html = (formatted_body: string): MatrixMessageContent => ({ body: 'fallback body', format: 'org.matrix.custom.html', formatted_body });

/** Every line must be safe to put after `PRIVMSG #chan :` — the point of the whole converter. */
function expectSafe(lines: string[]): void {
  for (const line of lines) {
    expect(line).not.toMatch(/[\r\n\0]/);
    expect(line.replace(/[\x02\x03\x0F\x11\x1D\x1E\x1F]/g, '')).not.toMatch(/[\x00-\x1F\x7F]/);
  }
}

describe('matrixToIrc plain body', () => {
  it.each<[string, MatrixMessageContent, string[]]>([
    ['one line', { body: 'hello' }, ['hello']],
    ['lines', { body: 'a\nb' }, ['a', 'b']],
    ['command injection with CRLF', { body: 'hello\r\nPRIVMSG #x :pwned' }, ['hello', 'PRIVMSG #x :pwned']],
    ['bare CR', { body: 'a\rQUIT :bye' }, ['a', 'QUIT :bye']],
    ['NUL', { body: 'a\0b' }, ['ab']],
    ['CTCP and formatting codes typed by the user', { body: '\x01ACTION x\x01 \x02\x0304y' }, ['ACTION x 04y']],
    ['tab becomes a space', { body: 'a\tb' }, ['a b']],
    ['unicode line separators', { body: 'a\u2028b\u2029c\u0085d' }, ['a', 'b', 'c', 'd']],
    ['blank lines are dropped', { body: 'a\n\n  \nb\n' }, ['a', 'b']],
    ['leading spaces are kept', { body: '  indented' }, ['  indented']],
    ['empty', { body: '' }, []],
    ['not a string', { body: 42 as unknown as string }, []],
    ['HTML without the format field is ignored', { body: '*hi*', formatted_body: '<b>hi</b>' }, ['*hi*']],
    ['an unknown format is ignored', { body: 'hi', format: 'text/markdown', formatted_body: '**hi**' }, ['hi']],
    ['emote text is returned as is', { body: 'waves', msgtype: 'm.emote' }, ['waves']],
  ])('%s', (_name, content, expected) => {
    const lines = matrixToIrc(content, opts);
    expect(lines).toEqual(expected);
    expectSafe(lines);
  });
});

describe('matrixToIrc HTML', () => {
  it.each<[string, string, string[]]>([
    // inline formatting
    ['bold', '<b>bold</b> plain', [`${B}bold${B} plain`]],
    ['strong', '<strong>x</strong>', [`${B}x`]],
    ['italic', '<i>a</i> <em>b</em>', [`${I}a${I} ${I}b`]],
    ['underline', '<u>x</u>', [`${U}x`]],
    ['strikethrough', '<del>a</del><s>b</s><strike>c</strike>', [`${S}abc`]],
    ['inline code', 'run <code>ls  -l</code> now', [`run ${M}ls -l${M} now`]],
    ['nested', '<b>bold <i>both</i></b> <i>italic</i>', [`${B}bold ${I}both${B}${I} ${I}italic`]],
    ['same tag nested twice', '<b><b>x</b>y</b>z', [`${B}xy${B}z`]],
    ['a space keeps its own style', '<u>a </u>b', [`${U}a ${U}b`]],
    ['empty elements write nothing', '<b></b>x<i></i>y', ['xy']],
    ['a formatted space is written as one', 'x<u> </u>y', [`x${U} ${U}y`]],
    // degrading: unknown tags keep text and the formatting around and inside them
    ['unknown tag around bold', '<blink><b>bold</b></blink> text', [`${B}bold${B} text`]],
    ['custom element', '<x-custom data-a="1">a <b>b</b></x-custom> <i>c</i>', [`a ${B}b${B} ${I}c`]],
    ['unknown tag inside bold', '<b>a<marquee>b</marquee>c</b>', [`${B}abc`]],
    ['a tag name that is an object key', '<constructor>a</constructor> <b>c</b>', [`a ${B}c`]],
    // As in HTML: '<_' is text, and '</_' starts a bogus comment.
    ['not a tag name', '<__proto__>b</__proto__>', ['<__proto__>b']],
    ['script is dropped', '<script>alert(1)</script>hi', ['hi']],
    ['style is dropped', '<style>b{}</style><b>hi</b>', [`${B}hi`]],
    // malformed HTML
    ['unclosed', '<b>unclosed', [`${B}unclosed`]],
    ['stray close tag', '</b>stray close', ['stray close']],
    ['misnested', '<b><i>x</b></i>y', [`${B}${I}x${B}${I}y`]],
    ['close of an outer tag closes the inner one', '<b>bold <i>both</b> after</i>', [`${B}bold ${I}both${B}${I} after`]],
    ['paragraph closes open bold', '<p><b>a</p><p>b</b></p>', [`${B}a`, 'b']],
    ['cut-off tag', 'ok <b class="x', ['ok']],
    ['lone angle bracket', 'a < b > c', ['a < b > c']],
    // entities and escapes
    ['entities are decoded', '&lt;script&gt; &amp; &quot; &#x1F600; a&nbsp;b', ['<script> & " 😀 a\u00a0b']],
    ['encoded CRLF outside pre is a space', 'a&#13;&#10;PRIVMSG #x :pwned', ['a PRIVMSG #x :pwned']],
    ['encoded CRLF inside pre is a new line', '<pre>a&#13;&#10;QUIT</pre>', [`${M}a`, `${M}QUIT`]],
    ['encoded NUL', 'a&#0;b', ['a\ufffdb']],
    ['raw NUL and controls', 'a\0b\x01c\x03d', ['abcd']],
    ['raw newline in text', '<b>a\nb</b>', [`${B}a b`]],
    // blocks and line breaks
    ['br', 'a<br>b<br/>c</br>d', ['a', 'b', 'c', 'd']],
    ['paragraphs', '<p>a</p>\n\n<p>   b   c  </p>', ['a', 'b c']],
    ['divs', '<div>a</div><div>b</div>c', ['a', 'b', 'c']],
    ['headings are bold lines', '<h1>Title</h1><h6>Small</h6>para', [`${B}Title`, `${B}Small`, 'para']],
    ['formatting continues on the next line', '<b>a<br>b</b>', [`${B}a`, `${B}b`]],
    ['hr', 'x<hr>y', ['x', '---', 'y']],
    ['table', '<table><tr><th>h1</th><th>h2</th></tr><tr><td>a</td><td>b</td></tr></table>', [`${B}h1${B} | ${B}h2`, 'a | b']],
    // preformatted
    ['code block', '<pre><code class="language-js">if (x) {\n  y();\n}\n</code></pre>after', [`${M}if (x) {`, `${M}  y();`, `${M}}`, 'after']],
    ['tab in code block', '<pre><code>\tindented</code></pre>', [`${M}    indented`]],
    ['bold inside pre', '<pre>a <b>b</b></pre>', [`${M}a ${B}b`]],
    // found in review: blank lines inside a code block were dropped with the others
    ['a blank line in a code block is kept', '<pre><code>def a():\n    pass\n\ndef b():\n    pass\n</code></pre>', [`${M}def a():`, `${M}    pass`, M, `${M}def b():`, `${M}    pass`]],
    ['several blank lines in a code block', '<pre>a\n\n\nb</pre>', [`${M}a`, M, M, `${M}b`]],
    ['blank lines at the end of a code block go', '<pre>a\n\n\n</pre>after', [`${M}a`, 'after']],
    ['a blank line in a quoted code block', '<blockquote><pre>a\n\nb</pre></blockquote>', [`> ${M}a`, `> ${M}`, `> ${M}b`]],
    ['a blank line across text nodes', '<pre>a &lt;\n<b>\n</b>&gt; b</pre>', [`${M}a <`, M, `${M}> b`]],
    ['encoded CRLFs in a code block: one blank line', '<pre>a&#13;&#10;&#13;&#10;b</pre>', [`${M}a`, M, `${M}b`]],
    // lists and quotes
    ['bullet list', '<ul><li>one</li><li>two</li></ul>', ['• one', '• two']],
    ['numbered list', '<ol><li>one</li><li>two</li></ol>', ['1. one', '2. two']],
    ['numbered list with start', '<ol start="9"><li>nine</li><li>ten</li></ol>', ['9. nine', '10. ten']],
    ['bad start attribute', '<ol start="x"><li>one</li></ol>', ['1. one']],
    ['empty start attribute', '<ol start=""><li>one</li></ol>', ['1. one']],
    ['nested list', '<ul><li>a<ul><li>b<br>c</li></ul></li><li>d</li></ul>', ['• a', '  • b', '    c', '• d']],
    ['paragraphs in a list item', '<ol><li><p>para1</p><p>para2</p></li></ol>', ['1. para1', '   para2']],
    ['list item with formatting', '<ul><li><b>bold</b> item</li></ul>', [`• ${B}bold${B} item`]],
    ['blockquote', '<blockquote><p>q1</p><p>q2</p></blockquote><p>after</p>', ['> q1', '> q2', 'after']],
    ['nested blockquote', '<blockquote><blockquote>deep</blockquote>shallow</blockquote>', ['> > deep', '> shallow']],
    ['list in a quote', '<blockquote><ul><li>x</li></ul></blockquote>', ['> • x']],
    // links and pills
    ['link', '<a href="https://example.org">site</a>', ['site <https://example.org>']],
    ['link whose text is the URL', '<a href="https://x.y">https://x.y</a>', ['https://x.y']],
    ['link without text', '<a href="https://x.y"></a>', ['https://x.y']],
    ['mailto link', '<a href="mailto:a@b.c">a@b.c</a>', ['a@b.c']],
    // found in review: clients that link bare addresses had them said twice
    ['bare domain, linked', 'see <a href="http://x.org">x.org</a> and <a href="https://www.x.org">www.x.org</a>', ['see x.org and www.x.org']],
    ['the text without the closing slash', '<a href="https://x.org/">https://x.org</a>', ['https://x.org']],
    ['the text decoded', '<a href="https://x.org/caf%C3%A9">x.org/café</a>', ['x.org/café']],
    ['the same host under another name is repeated', '<a href="https://evil.example">x.org</a>', ['x.org <https://evil.example>']],
    ['link with formatted text', '<a href="https://ex.org">ex <b>bold</b></a> after', [`ex ${B}bold${B} <https://ex.org> after`]],
    ['anchor without href', '<a name="x">text</a>', ['text']],
    ['user pill', '<a href="https://matrix.to/#/@alice:example.org">Alice</a>: hi', ['alice: hi']],
    ['user pill with formatting inside', '<a href="https://matrix.to/#/@alice:example.org"><b>Alice</b></a>: hi', ['alice: hi']],
    ['percent-encoded pill', '<a href="https://matrix.to/#/%40bob%3Aexample.org">Bob</a>', ['bob']],
    ['matrix: URI pill', '<a href="matrix:u/bob:example.org?action=chat">Bob</a>', ['bob']],
    ['unknown user pill uses its text', '<a href="https://matrix.to/#/@nobody:example.org">Nobody</a>', ['Nobody']],
    ['unknown user pill without text', '<a href="https://matrix.to/#/@nobody:example.org"></a>', ['@nobody:example.org']],
    ['a nick with CRLF from the lookup', '<a href="https://matrix.to/#/@evil:example.org">Evil</a>', ['evil QUIT']],
    ['room alias pill', '<a href="https://matrix.to/#/%23room:example.org">#room:example.org</a>', ['#irc-room']],
    ['room ID pill', '<a href="https://matrix.to/#/!abc:example.org?via=example.org">a room</a>', ['#irc-room']],
    ['unknown room pill', '<a href="https://matrix.to/#/#other:example.org">#other:example.org</a>', ['#other:example.org']],
    // found by convert-fuzz: pill text is kept up to 1024 UTF-16 units, which fell inside an emoji
    ['long pill text is cut between code points', `<a href="https://matrix.to/#/@nobody:example.org">a${'😀'.repeat(600)}</a>`, [`a${'😀'.repeat(511)}`]],
    ['event permalink is a link', '<a href="https://matrix.to/#/!r:x/$e?via=x">link</a>', ['link <https://matrix.to/#/!r:x/$e?via=x>']],
    // replies, images, colours
    [
      'reply fallback is removed',
      '<mx-reply><blockquote><a href="https://matrix.to/#/!r:x/$e">In reply to</a> <a href="https://matrix.to/#/@bob:example.org">@bob</a><br>original</blockquote></mx-reply>my reply',
      ['my reply'],
    ],
    ['image alt', 'look <img src="mxc://x/y" alt=":cat:"> here', ['look :cat: here']],
    ['image without alt', '<img src="mxc://a/b">', ['mxc://a/b']],
    ['font colour', '<font data-mx-color="#ff0000">red</font> text', [`\x0304red${O} text`]],
    ['legacy colour attribute, digit after', '<font color="#00ff00">1</font>2', [`\x03091${O}2`]],
    ['colour and background', '<font data-mx-color="#ffffff" data-mx-bg-color="#000000">x</font>', ['\x0300,01x']],
    ['background only', '<span data-mx-bg-color="#ff0000">x</span>', ['\x0399,04x']],
    ['colour before a comma and digit', '<font data-mx-color="#ff0000">,5</font>', [`\x0304${B}${B},5`]],
    // found by convert-fuzz: the comma and the digit in two text nodes, the digits read as a background
    ['colour before a comma, digit in the next text node', '<font data-mx-color="#ff0000">,<b></b>5</font>', [`\x0304${B}${B},5`]],
    ['colour with bold kept after the colour ends', '<b><font data-mx-color="#ff0000">r</font>b</b>', [`${B}\x0304r${O}${B}b`]],
    ['not a colour', '<font data-mx-color="red">x</font>', ['x']],
    ['spoiler', '<span data-mx-spoiler="why">secret</span> open', [`\x0301,01secret${O} open`]],
  ])('%s', (_name, formattedBody, expected) => {
    const lines = matrixToIrc(html(formattedBody), opts);
    expect(lines).toEqual(expected);
    expectSafe(lines);
  });

  it.each<[string, string]>([
    ['empty formatted body', ''],
    ['only a reply fallback', '<mx-reply><blockquote>old</blockquote></mx-reply>'],
    ['only whitespace', '<p> </p>\n'],
    ['a code block of blank lines', '<pre><code>\n\n\n</code></pre>'],
  ])('falls back to the body when the HTML has no text: %s', (_name, formattedBody) => {
    expect(matrixToIrc(html(formattedBody), opts)).toEqual(['fallback body']);
  });

  it('works without options', () => {
    expect(matrixToIrc(html('<a href="https://matrix.to/#/@alice:example.org">Alice</a> hi'))).toEqual(['Alice hi']);
  });
});

describe('matrixToIrc hostile input', () => {
  it.each<[string, MatrixMessageContent]>([
    ['CRLF in plain body', { body: 'x\r\nJOIN #secret\r\n\r\nQUIT\n\r\0' }],
    ['CRLF in HTML text', html('x\r\nJOIN #secret<b>\r\nQUIT</b>')],
    ['CRLF in pre', html('<pre>x\r\nJOIN #secret\r\0QUIT</pre>')],
    ['CRLF in an href', html('<a href="https://x.y/\r\nQUIT">t</a>')],
    ['encoded CRLF in an href', html('<a href="https://x.y/&#13;&#10;QUIT">t</a>')],
    ['CRLF in img alt', html('<img alt="a&#10;QUIT">')],
    ['every C0 control', { body: Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).join('x') }],
    ['every C0 control in pre', html(`<pre>${Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).join('x')}</pre>`)],
  ])('%s: no CR, LF, NUL or stray controls', (_name, content) => {
    const lines = matrixToIrc(content, opts);
    expect(lines.length).toBeGreaterThan(0);
    expectSafe(lines);
  });

  it('drops the half of a surrogate pair the HTML parser leaves at a broken tag (found by convert-fuzz)', () => {
    expect(matrixToIrc(html('a</o 👦 b'), opts)).toEqual(['ab']); // (the parser takes ' 👦 ' as part of the tag)
    expect(matrixToIrc(html('</o 👦'), opts)).toEqual(['fallback body']);
  });

  it('survives deep nesting without recursion', () => {
    const depth = 20_000;
    expect(matrixToIrc(html(`${'<b>'.repeat(depth)}deep${'</b>'.repeat(depth)}`))).toEqual([`${B}deep`]);
    expect(matrixToIrc(html(`${'<span>'.repeat(depth)}x`))).toEqual(['x']);
    const links = `${'<a href="https://x.y">'.repeat(depth)}t${'</a>'.repeat(depth)}`;
    expect(matrixToIrc(html(links))).toEqual([`t${' <https://x.y>'.repeat(depth)}`]);
  });

  it('handles a huge message', () => {
    const paragraphs = Array.from({ length: 5_000 }, (_, i) => `<p>line <b>${i}</b> &amp; more</p>`).join('');
    const lines = matrixToIrc(html(paragraphs));
    expect(lines).toHaveLength(5_000);
    expect(lines[4_999]).toBe(`line ${B}4999${B} & more`);
    expect(matrixToIrc({ body: 'x'.repeat(1_000_000) })).toEqual(['x'.repeat(1_000_000)]);
  });
});
