import { describe, expect, it } from 'vitest';
import {
  allowedMentions, defuseEveryone, escapeDiscordMarkdown, LONG_TEXT_FILE, matrixToDiscord, nameKey, replyQuote, splitCapped, splitMessage,
  webhookUsername, type MatrixToDiscordResolver,
} from '../../../packages/discord/src/convert/index.js';

const resolver: MatrixToDiscordResolver = {
  user: (mxid) => (mxid === '@discord_111:example.org' ? '111' : undefined),
  room: (room) => (room === '!bridged:example.org' || room === '#discord_1_333:example.org' ? '333' : undefined),
  emoji: (mxc) => (mxc === 'mxc://example.org/party' ? { id: '444', name: 'party', animated: false } : mxc === 'mxc://example.org/dance' ? { id: '445', name: 'dance', animated: true } : undefined),
  mediaUrl: (mxc) => `https://bridge.example.org/media/${mxc.slice(6)}`,
  roles: [{ id: '222', name: 'mods', mentionable: true }, { id: '223', name: 'quiet', mentionable: false }, { id: '1', name: '@everyone', mentionable: true }],
};

const html = (formattedBody: string, r: MatrixToDiscordResolver = resolver) => matrixToDiscord({ body: 'fallback', formattedBody }, r);
const plain = (body: string, r: MatrixToDiscordResolver = resolver) => matrixToDiscord({ body }, r);

describe('matrixToDiscord: plain text is shown as typed', () => {
  it.each<[string, string, string]>([
    ['plain', 'hello world', 'hello world'],
    ['markdown characters are escaped', 'a *b* _c_ ~~d~~ `e` ||f|| [g](h)', 'a \\*b\\* \\_c\\_ \\~\\~d\\~\\~ \\`e\\` \\|\\|f\\|\\| \\[g\\](h)'],
    ['snake_case survives', 'my_var_name', 'my\\_var\\_name'],
    ['URLs are not escaped', 'see https://example.org/a_b*c ok', 'see https://example.org/a_b*c ok'],
    ['backslashes are escaped', 'C:\\path', 'C:\\\\path'],
    ['a quote marker at a line start', '> not a quote\nx > y', '\\> not a quote\nx > y'],
    ['a heading marker', '# not a heading', '\\# not a heading'],
    ['list markers', '- a\n* b\n1. c', '\\- a\n\\* b\n1\\. c'],
    ['subtext marker', '-# small', '\\-# small'],
    ['typed mention syntax stays literal', '<@123> <#456> <:x:789> <t:1>', '\\<@123> \\<#456> \\<:x:789> \\<t:1>'],
    ['a typed command mention stays literal (clicked, it would run the command)', '</ban:123456789012345678>', '\\</ban:123456789012345678>'],
    ['a typed server link stays literal', '<id:customize> <id:browse>', '\\<id:customize> \\<id:browse>'],
    ['everyone is defused', '@everyone and @here', '@\u200beveryone and @\u200bhere'],
    ['e-mail addresses are not mentions', 'mail a@mods.org', 'mail a@mods.org'],
    ['control characters are dropped', 'a\u0000b\u0007c', 'abc'],
    ['line breaks are kept', 'one\ntwo\r\nthree', 'one\ntwo\nthree'],
  ])('%s', (_name, input, expected) => {
    expect(plain(input).content).toBe(expected);
  });

  it('turns @Role into a role mention only for mentionable roles', () => {
    const out = plain('@mods help, @quiet please, @Mods!', { ...resolver, allowRoles: true });
    expect(out.content).toBe('<@&222> help, @quiet please, <@&222>!');
    expect(out.roles).toEqual(['222']);
  });

  it('lets @everyone through when allowed, and says so', () => {
    const out = plain('@everyone look', { ...resolver, allowEveryone: true });
    expect(out.content).toBe('@everyone look');
    expect(out.everyone).toBe(true);
  });
});

// `@Role` pings a whole role: only from a sender allowed to (the caller decides, as for @everyone),
// and never from what is quoted (quoting an announcement would ping again) or a link's text
describe('matrixToDiscord: @Role', () => {
  const allowed: MatrixToDiscordResolver = { ...resolver, allowRoles: true, allowEveryone: true };
  it.each<[string, { body: string; formattedBody?: string }, MatrixToDiscordResolver, string, string[]]>([
    ['not allowed: the name as typed', { body: '@mods help, @Mods!' }, resolver, '@mods help, @Mods!', []],
    ['not allowed, in HTML', { body: 'x', formattedBody: '<b>@mods</b> help' }, resolver, '**@mods** help', []],
    ['allowed', { body: '@mods help' }, allowed, '<@&222> help', ['222']],
    ['allowed, a role that is not mentionable', { body: '@quiet please' }, allowed, '@quiet please', []],
    ['in a quote', { body: 'x', formattedBody: '<blockquote>@mods said @everyone</blockquote>ok' }, allowed, '> @mods said @\u200beveryone\nok', []],
    ['in a list in a quote', { body: 'x', formattedBody: '<blockquote><ul><li>@mods</li></ul></blockquote>' }, allowed, '> - @mods', []],
    ['in a line quoted in plain text', { body: '> @mods said so\n@mods agreed' }, allowed, '\\> @mods said so\n<@&222> agreed', ['222']],
    ['in a link\'s text', { body: 'x', formattedBody: '<a href="https://x.org">@mods</a>' }, allowed, '[@mods](https://x.org)', []],
    ['in an image\'s alt text', { body: 'x', formattedBody: '<img src="https://x.org/a.png" alt="@mods">' }, allowed, '[@mods](https://x.org/a.png)', []],
  ])('%s', (_name, msg, r, content, roles) => {
    const out = matrixToDiscord(msg, r);
    expect(out.content).toBe(content);
    expect(out.roles).toEqual(roles);
    expect(allowedMentions(out).roles).toEqual(roles);
  });

  it('pings everyone after a quote, not in it', () => {
    expect(matrixToDiscord({ body: 'x', formattedBody: '<blockquote>@here</blockquote>@here' }, { ...resolver, allowEveryone: true }))
      .toMatchObject({ content: '> @\u200bhere\n@here', everyone: true });
  });
});

describe('matrixToDiscord: HTML', () => {
  it.each<[string, string, string]>([
    ['bold, italic, underline, strike', '<b>b</b> <strong>s</strong> <i>i</i> <em>e</em> <u>u</u> <del>d</del> <s>s</s>', '**b** **s** *i* *e* __u__ ~~d~~ ~~s~~'],
    ['nesting', '<b>bold <i>both</i></b>', '**bold *both***'],
    ['spaces stay outside the markers', '<b> spaced </b>x', ' **spaced** x'.trim()],
    ['empty formatting disappears', 'a<b></b>b', 'ab'],
    ['spoiler', '<span data-mx-spoiler>secret</span>', '||secret||'],
    ['spoiler with a reason', '<span data-mx-spoiler="plot">secret</span>', '||secret||'],
    ['inline code is not escaped', '<code>a*b_c</code>', '`a*b_c`'],
    ['inline code with a backtick', '<code>a`b</code>', '`` a`b ``'],
    ['code block with a language', '<pre><code class="language-rust">fn main() {}\n</code></pre>', '```rust\nfn main() {}\n```'],
    ['code block keeps indentation and markdown', '<pre><code>  *x*\n    y\n</code></pre>', '```\n  *x*\n    y\n```'],
    ['code block fence in the code is broken', '<pre><code>a ``` b</code></pre>', '```\na `\u200b`` b\n```'],
    ['text in HTML is escaped', '<p>2*3*4 and _x_</p>', '2\\*3\\*4 and \\_x\\_'],
    ['entities are decoded', '<p>a &lt;b&gt; &amp; c</p>', 'a <b> & c'],
    ['paragraphs', '<p>one</p><p>two</p>', 'one\n\ntwo'],
    ['line breaks', 'a<br>b<br/>c', 'a\nb\nc'],
    ['block quote', '<blockquote><p>quoted</p><p>more</p></blockquote><p>after</p>', '> quoted\n> \n> more\n\nafter'],
    ['headings', '<h1>One</h1><h3>Three</h3><h5>Five</h5>', '# One\n### Three\n**Five**'],
    ['unordered list', '<ul>\n<li>one</li>\n<li>two</li>\n</ul>', '- one\n- two'],
    ['ordered list with a start', '<ol start="3"><li>three</li><li>four</li></ol>', '3. three\n4. four'],
    ['nested list', '<ul><li>a<ul><li>b</li></ul></li></ul>', '- a\n  - b'],
    ['a link', '<a href="https://example.org/x">the site</a>', '[the site](https://example.org/x)'],
    ['a link whose text is the URL', '<a href="https://example.org/x_y">https://example.org/x_y</a>', 'https://example.org/x_y'],
    ['parentheses in a link URL are encoded', '<a href="https://en.wikipedia.org/wiki/A_(b)">A</a>', '[A](https://en.wikipedia.org/wiki/A_%28b%29)'],
    ['a javascript: link is only text', '<a href="javascript:alert(1)">click</a>', 'click'],
    ['the reply fallback is dropped', '<mx-reply><blockquote>old</blockquote></mx-reply>new', 'new'],
    ['scripts are dropped', 'a<script>alert(1)</script>b', 'ab'],
    ['colours are dropped', '<font data-mx-color="#ff0000">red</font>', 'red'],
    ['horizontal rule', 'a<hr>b', 'a\n───\nb'],
    ['a table as lines', '<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>', 'a | b\n1 | 2'],
    ['runs of blank lines collapse', '<p>a</p><br><br><br><p>b</p>', 'a\n\nb'],
  ])('%s', (_name, input, expected) => {
    expect(html(input).content).toBe(expected);
  });

  it('turns a pill of a Discord ghost into a mention, and says who may be pinged', () => {
    const out = html('hi <a href="https://matrix.to/#/@discord_111:example.org">Bobby</a>!');
    expect(out.content).toBe('hi <@111>!');
    expect(out.users).toEqual(['111']);
  });

  it('turns a pill of a Matrix user into their name, pinging no one', () => {
    const out = html('hi <a href="https://matrix.to/#/%40alice%3Aexample.org">Alice</a> and <a href="https://matrix.to/#/@bob:example.org">@bob:example.org</a>');
    expect(out.content).toBe('hi @Alice and @bob:example.org');
    expect(out.users).toEqual([]);
  });

  it('turns a room pill of a bridged room into a channel mention', () => {
    expect(html('see <a href="https://matrix.to/#/!bridged:example.org?via=example.org">the room</a>').content).toBe('see <#333>');
    expect(html('see <a href="https://matrix.to/#/#discord_1_333:example.org">#general</a>').content).toBe('see <#333>');
    expect(html('see <a href="https://matrix.to/#/#other:example.org">#other:example.org</a>').content).toBe('see #other:example.org');
  });

  it('turns custom emojis into Discord emojis when Discord has them', () => {
    const out = html('<img data-mx-emoticon src="mxc://example.org/party" alt=":party:"> <img data-mx-emoticon src="mxc://example.org/dance" alt=":dance:"> <img data-mx-emoticon src="mxc://example.org/nope" alt=":nope:">');
    expect(out.content).toBe('<:party:444> <a:dance:445> :nope:');
  });

  it('links inline images through the media proxy', () => {
    expect(html('<img src="mxc://example.org/abc" alt="cat">').content).toBe('[cat](https://bridge.example.org/media/example.org/abc)');
  });

  it('defuses @everyone in HTML and converts roles', () => {
    const out = html('<p>@everyone, <b>@mods</b> please</p>', { ...resolver, allowRoles: true });
    expect(out.content).toBe('@\u200beveryone, **<@&222>** please');
    expect(out.roles).toEqual(['222']);
    expect(out.everyone).toBe(false);
  });

  it('falls back to the body when the HTML is empty', () => {
    expect(matrixToDiscord({ body: 'plain *x*', formattedBody: '  ' }).content).toBe('plain \\*x\\*');
  });
});

describe('matrixToDiscord: regressions found by convert-fuzz.test.ts', () => {
  it.each<[string, string, string]>([
    ['@everyone after a letter or a dot is defused', 'x@everyone a.@here', 'x@\u200beveryone a.@\u200bhere'],
    ['@here before an underscore is defused (escaping makes it `\\_`)', '@here_', '@\u200bhere\\_'],
    ['text after a URL cannot take the escape into the link', 'see https://x.y/a<@3>', 'see <https://x.y/a>\\<@3>'],
    ['a URL that stops at `>` in angle brackets, then text', '<http://e>____', '<http://e>\\_\\_\\_\\_'],
    ['a URL after an escaped character', '_https://x.y_', '\\_https://x.y_'],
    ['what is not a URL here is not one on Discord', 'http:///<:', 'http\\:///\\<:'],
    ['a block marker after whitespace the message trim removes', '\ufeff> o', '\\> o'],
    ['@Role inside a URL is left alone', 'https://x.y/@mods', 'https://x.y/@mods'],
  ])('plain: %s', (_name, input, expected) => {
    expect(plain(input).content).toBe(expected);
  });

  it.each<[string, string, string]>([
    ['a malformed matrix: URI does not throw', '<a href="matrix:u/%ZZ">x</a>', '@x'],
    ['text split by tags does not join into a mention', '&lt;<span>@123&gt;</span> &lt;<span>a</span>:x:1&gt;', '\\<@123> \\<a:x:1>'],
    ['text split by tags does not join into a list', '-<span> a</span>', '\\- a'],
    ['four backticks in a code block do not close it', '<pre>````@everyone</pre>', '```\n`\u200b`\u200b``@everyone\n```'],
    ['control characters are dropped in code blocks', '<pre>a\fb</pre>', '```\nab\n```'],
    ['a CR in a code block in a heading is not a line break', '<h1><pre>&lt;@1&gt;\ro</pre></h1>', '# ``` <@1> o ```'],
    ['a link URL with spaces and brackets is encoded', '<a href="https://x.y/ <@123> (">label</a>', '[label](https://x.y/%20%3C@123%3E%20%28)'],
    ['a link shown as its URL is encoded too', '<a href="https://x.y/\n<@123>"></a>', 'https://x.y/%0A%3C@123%3E'],
    ['an e-mail link is text, defused', '<a href="mailto:a@everyone">a@everyone</a>', 'a@\u200beveryone'],
    ['in a link\'s text, @everyone in a URL is defused', '<a href="http://x.y/&quot;">http://x/@here</a>', '[http://x/@\u200bhere](http://x.y/")'],
    ['an image alt text is defused', '<img src="https://x.y/a.png" alt="@everyone">', '[@\u200beveryone](https://x.y/a.png)'],
    ['a URL ending one tag takes the text of the next as Discord does', '<x-y>https://x.y</x-y>_', 'https://x.y_'],
    ['a URL inside italics cannot close them early', '<i>http://*@everyone</i>', '*http://%2A@everyone*'],
    ['a URL inside bold keeps its link, with `_` encoded', '<b>see https://en.wikipedia.org/wiki/Foo_bar now</b>', '**see https://en.wikipedia.org/wiki/Foo%5Fbar now**'],
    ['a backslash in a URL inside bold is encoded: it would escape the closing marker', '<b>see http://x.y/a\\</b>', '**see http://x.y/a%5C**'],
    ['a URL outside formatting is left as it is', '<p>https://en.wikipedia.org/wiki/Foo_bar</p>', 'https://en.wikipedia.org/wiki/Foo_bar'],
    ['a link inside italics cannot close them early', '<em><a href="https://x.y/a*b">t</a></em>', '*[t](https://x.y/a%2Ab)*'],
    ['a link inside a link is its text', '<a href="https://a.b/">x <a href="https://c.d/">y</a></a>', '[x y](https://a.b/)'],
    ['a link\'s text is one line', '<a href="https://a.b/">one<br>two</a>', '[one two](https://a.b/)'],
    ['a link with no text shown is its URL (`[](url)` is no link)', '<a href="https://a.b/"><mx-reply>q</mx-reply></a>', 'https://a.b/'],
    ['a link to `http://` alone is its text', '<a href="http://">text</a>', 'text'],
    ['a `<` before a URL it does not close is escaped', 'a &lt;https://x.y b', 'a \\<https://x.y b'],
    ['`<url>` is one link to its `>`, `<` inside included', 'a &lt;https://x.y&lt;x:1&gt; b', 'a <https://x.y<x:1> b'],
    ['half a surrogate pair left by a broken tag is dropped', '</g 🌈', ''],
    // code with marker characters, and blocks read at a line start, cannot sit inside formatting:
    // the formatting moves onto what is around them
    ['code holding a marker is left out of bold', '<b>a<code>x*</code>b</b>', '**a**`x*`**b**'],
    ['code holding a marker is left out of a bold heading', '<h5>Title <code>a*b</code></h5>', '**Title** `a*b`'],
    ['a code block is left out of bold', '<b>see<pre>**x</pre></b>', '**see**\n```\n**x\n```'],
    ['bold moves into a quote', '<b><blockquote>quoted</blockquote>after</b>', '> **quoted**\n**after**'],
    ['bold moves into list items', '<b><ul><li>one</li><li>two</li></ul></b>', '- **one**\n- **two**'],
    ['bold around a hidden reply is not split by it', '<b>a<mx-reply><blockquote>q</blockquote></mx-reply>b</b>', '**ab**'],
    ['a space at the start of bold stays a space', 'a<b> b</b>', 'a **b**'],
    ['strike ending in `~` ends where it should', '<del>a~</del>', '~~a\\~\u200b~~'],
    ['a spoiler ending in `|` ends where it should', '<span data-mx-spoiler>a|</span>', '||a\\|\u200b||'],
    ['bold inside bold adds no markers', '<b>a <i>b <b>c</b></i></b>', '**a *b c***'],
    ['formatting side by side is kept apart', '<b>a</b><i>b</i><i>c</i>', '**a**\u200b*b*\u200b*c*'],
    ['code spans side by side are kept apart', '<code>a</code><code>b</code>', '`a`\u200b`b`'],
    ['a code block in a list item follows its text', '<ul><li>see<pre>code</pre></li><li>b</li></ul>', '- see\n```\ncode\n```\n- b'],
    ['a list item of only a code block is the code block', '<ol><li><pre>x</pre></li><li>b</li></ol>', '```\nx\n```\n2. b'],
    ['a line break right after <pre> is not code', '<pre>\ncode</pre>', '```\ncode\n```'],
    ['a blank line keeps a quote going', '<blockquote><pre>a\n\nb</pre></blockquote>', '> ```\n> a\n> \n> b\n> ```'],
    ['code with a bracket in a link\'s text is text', '<a href="https://x.y">see <code>a]b</code></a>', '[see a\\]b](https://x.y)'],
    ['a URL in a link\'s text is text', '<a href="https://e.org">see https://x.y/a_b</a>', '[see https://x.y/a\\_b](https://e.org)'],
    ['an image in a link\'s text is no link', '<a href="https://x.y">a <img src="https://i.y/a.png" alt="pic"></a>', '[a pic](https://x.y)'],
    ['an image at `http://` alone is its alt text', '<img src="http://" alt="a">', 'a'],
  ])('HTML: %s', (_name, input, expected) => {
    expect(html(input).content).toBe(expected);
  });

  it('sends the plain body when tags nested thousands deep exhaust the stack', () => {
    const out = matrixToDiscord({ body: 'plain *body*', formattedBody: '<b>'.repeat(20_000) + 'x' }, resolver);
    expect(out.content).toBe('plain \\*body\\*');
  });

  it('moves formatting nested a thousand deep around code it cannot wrap, keeping all the text', () => {
    const tags = ['b', 'i', 'u', 's'];
    const html = tags.map((t) => `<${t}>x`).join('').repeat(250) + '<code>a*b</code>';
    const out = matrixToDiscord({ body: 'x', formattedBody: html }, resolver);
    expect(out.content.endsWith('`a*b`')).toBe(true);
    // (markers removed, and the star in the code)
    expect(out.content.replace(/[*_~\u200b]/g, '')).toBe(`${'x'.repeat(1000)}\`ab\``);
  });

  it('names an image whose alt text is only control characters "image"', () => {
    expect(html('<img src="mxc://g/e" alt="\u0007">', { ...resolver, mediaUrl: (mxc) => `https://media.example/${mxc.slice(6)}` }).content).toBe('[image](https://media.example/g/e)');
  });

  it('links an image only through an http(s) URL (a media link may be the mxc:// URL itself)', () => {
    expect(html('<img src="mxc://x/a b) <@123> (" alt="cat">', { ...resolver, mediaUrl: (mxc) => mxc }).content).toBe('cat');
  });

  it('escapes command and server-link syntax in HTML text, in a link\'s text and in a reply\'s snippet', () => {
    expect(html('<b>&lt;/ban:1&gt;</b> <a href="https://e.org">&lt;id:guide&gt;</a>').content).toBe('**\\</ban:1>** [\\<id:guide>](https://e.org)');
    expect(replyQuote({ author: 'bob', snippet: '</ban:1> <id:browse>' })).toBe('> bob: \\</ban:1> \\<id:browse>\n');
  });

  it('quotes a snippet whose URL is followed by mention syntax as text', () => {
    expect(replyQuote({ author: 'bob', snippet: 'http:///<@3>' })).toBe('> bob: http\\:///\\<@3>\n');
  });

  it('leaves an e-mail address whole, and never lets it ping, even from a user allowed to ping everyone', () => {
    for (const allowEveryone of [false, true]) {
      const out = plain('mail me@everyone.example or me@here.com', { ...resolver, allowEveryone });
      expect(out.content).toBe('mail me@everyone.example or me@here.com');
      expect(out.everyone).toBe(false);
    }
    // glued to a word but not an address: shown, defused, pinging no one
    expect(plain('x@everyone!', { ...resolver, allowEveryone: true })).toMatchObject({ content: 'x@\u200beveryone!', everyone: false });
  });

  it('reads a message of 300,000 `@` in one pass (each `@` once looked at a copy of the rest: about half a minute)', () => {
    const out = plain('@'.repeat(300_000), { ...resolver, roles: [{ id: '1', name: 'mods', mentionable: true }] });
    expect(out.content).toBe('@'.repeat(300_000));
  });

  it('never splits a backslash from what it escapes', () => {
    expect(splitMessage('\\_'.repeat(10), 7).every((p) => !/(?:^|[^\\])(?:\\\\)*\\$/.test(p))).toBe(true);
  });
});

describe('matrixToDiscord helpers', () => {
  it('builds allowed_mentions from what the message mentions on purpose', () => {
    expect(allowedMentions({ users: ['1', '1', '2'], roles: [], everyone: false })).toEqual({ parse: [], users: ['1', '2'], roles: [], replied_user: false });
    expect(allowedMentions({ users: [], roles: ['9'], everyone: true })).toEqual({ parse: ['everyone'], users: [], roles: ['9'], replied_user: false });
  });

  it.each<[string, { body: string; formattedBody?: string }, string]>([
    ['plain', { body: 'waves' }, '*waves*'],
    ['empty', { body: '' }, ''],
    ['two lines', { body: 'waves\nand smiles' }, '*waves\nand smiles*'],
    ['a URL with markers in it', { body: 'reads https://x.y/a_b*c' }, '*reads https://x.y/a%5Fb%2Ac*'],
    ['a URL at the end', { body: 'https://x.y/' }, '*https://x.y/*'],
    ['a star', { body: '*' }, '*\\*\u200b*'],
    ['HTML', { body: 'x', formattedBody: 'waves at <b>you</b>' }, '*waves at **you***'],
    ['HTML holding italics', { body: 'x', formattedBody: 'waves <i>slowly</i>' }, '*waves slowly*'],
    ['HTML holding code with a star', { body: 'x', formattedBody: 'runs <code>ls *</code> again' }, '*runs* `ls *` *again*'],
    ['HTML holding a quote', { body: 'x', formattedBody: 'quotes<blockquote>this</blockquote>' }, '*quotes*\n> *this*'],
  ])('writes an emote in italics: %s', (_name, msg, expected) => {
    expect(matrixToDiscord(msg, resolver, { emote: true }).content).toBe(expected);
  });

  it('quotes the message a Matrix reply answers, with a jump link and no ping', () => {
    expect(replyQuote({ author: 'bob', mention: '111', snippet: 'what *is* this?\nsecond line', jumpUrl: 'https://discord.com/channels/1/2/3' }))
      .toBe('> <@111>: what \\*is\\* this? second line [↪](<https://discord.com/channels/1/2/3>)\n');
    expect(replyQuote({ author: '@alice:example.org', snippet: 'x'.repeat(100) })).toBe(`> @alice:example.org: ${'x'.repeat(79)}…\n`);
    expect(replyQuote({ author: 'bob', snippet: '@everyone' })).toBe('> bob: @\u200beveryone\n');
  });

  // the author is shown as typed, as the snippet is: a Matrix id or a webhook's name is no markup or ping
  it.each<[string, string, string]>([
    ['a Matrix id with underscores (italics)', '@_x_:a.org', '> @\\_x\\_:a.org: hi\n'],
    ['a masked link (the URL bracketed: it ends there)', '[bank](https://evil.example)', '> \\[bank\\](<https://evil.example>): hi\n'],
    ['@everyone', '@everyone', '> @\u200beveryone: hi\n'],
    ['mention syntax', '<@123> <@&222>', '> \\<@123> \\<@&222>: hi\n'],
    ['a URL right before the colon (bracketed: it ends there)', 'https://x.y', '> <https://x.y>: hi\n'],
    ['a line break', 'a\n# b', '> a # b: hi\n'],
  ])('quotes a reply\'s author as text: %s', (_name, author, expected) => {
    expect(replyQuote({ author, snippet: 'hi' })).toBe(expected);
  });

  it('escapes and defuses text', () => {
    expect(escapeDiscordMarkdown('**x**')).toBe('\\*\\*x\\*\\*');
    expect(defuseEveryone('@everyone @here @hereby')).toBe('@\u200beveryone @\u200bhere @hereby');
  });
});

describe('webhookUsername', () => {
  const alice = { userId: '@alice:example.org', displayName: 'Alice' };
  it.each<[string, Parameters<typeof webhookUsername>[0], string[], string]>([
    ['the display name', alice, [], 'Alice'],
    ['too short: the Matrix id', { userId: '@a:example.org', displayName: 'A' }, [], '@a:example.org'],
    ['too long: the Matrix id', { userId: '@long:example.org', displayName: 'x'.repeat(33) }, [], '@long:example.org'],
    ['32 characters is fine', { userId: '@ok:example.org', displayName: 'y'.repeat(32) }, [], 'y'.repeat(32)],
    ['whitespace is collapsed', { userId: '@s:example.org', displayName: '  Sam \n Smith ' }, [], 'Sam Smith'],
    ['"Discord" is broken up', { userId: '@d:example.org', displayName: 'Discord Fan' }, [], 'Disc·ord Fan'],
    ['"Clyde" is broken up', { userId: '@c:example.org', displayName: 'clyde' }, [], 'cl·yde'],
    ['a guild member\'s name is not taken verbatim', alice, ['alice'], 'Alice (Matrix)'],
    ['a relayed IRC user', { userId: '@irc_libera_bob:example.org', displayName: 'bob', ghostOf: { network: 'irc' } }, [], 'bob (irc)'],
    // a member's name made to look different to a program, not to a person
    ['a zero-width space after a member\'s name', { userId: '@m:example.org', displayName: 'Admin\u200b' }, ['Admin'], 'Admin (Matrix)'],
    ['a zero-width space before it', { userId: '@m:example.org', displayName: '\u200bAdmin' }, ['Admin'], 'Admin (Matrix)'],
    ['a word joiner after it', { userId: '@m:example.org', displayName: 'Admin\u2060' }, ['Admin'], 'Admin (Matrix)'],
    ['a soft hyphen in it', { userId: '@m:example.org', displayName: 'A\u00addmin' }, ['Admin'], 'Admin (Matrix)'],
    ['a combining grapheme joiner in it', { userId: '@m:example.org', displayName: 'alice\u034f' }, ['alice'], 'alice (Matrix)'],
    ['a right-to-left mark in it', { userId: '@m:example.org', displayName: 'Ad\u200fmin' }, ['Admin'], 'Admin (Matrix)'],
    ['full-width letters', { userId: '@m:example.org', displayName: '\uff21dmin' }, ['Admin'], 'Admin (Matrix)'],
    ['a Cyrillic capital A', { userId: '@m:example.org', displayName: '\u0410dmin' }, ['Admin'], '\u0410dmin (Matrix)'],
    ['a Cyrillic small o', { userId: '@m:example.org', displayName: 'R\u043Ebin' }, ['robin'], 'R\u043Ebin (Matrix)'],
    ['a member whose own name has a zero-width space', { userId: '@m:example.org', displayName: 'Admin' }, ['Ad\u200bmin'], 'Admin (Matrix)'],
    ['"Discord" hidden by a zero-width space is broken up still', { userId: '@d:example.org', displayName: 'Disc\u200bord Fan' }, [], 'Disc·ord Fan'],
    ['only invisible characters and one letter: too short, the Matrix id', { userId: '@z:example.org', displayName: 'A\u200b\u200b' }, [], '@z:example.org'],
    ['an emoji keeps its joiners', { userId: '@e:example.org', displayName: 'Dev \ud83d\udc69\u200d\ud83d\udcbb' }, [], 'Dev \ud83d\udc69\u200d\ud83d\udcbb'],
    ['a name in another script that is nobody\'s', { userId: '@p:example.org', displayName: '\u041f\u0440\u0438\u0432\u0435\u0442' }, ['admin'],
      '\u041f\u0440\u0438\u0432\u0435\u0442'],
  ])('%s', (_name, sender, members, expected) => {
    expect(webhookUsername(sender, new Set(members))).toBe(expected);
  });

  it.each<[string, string]>([
    ['Admin', 'admin'], ['A\u00addmin\u200b', 'admin'], ['\uff21\uff24\uff2d\uff29\uff2e', 'admin'], ['\u0410dm\u0456n', 'admin'], ['\u0391\u039c', 'am'],
  ])('compares names as they look: %s', (name, key) => {
    expect(nameKey(name)).toBe(key);
  });

  it('never exceeds 80 characters', () => {
    expect([...webhookUsername({ userId: `@${'z'.repeat(120)}:example.org`, displayName: 'x' })].length).toBe(80);
  });
});

describe('splitCapped', () => {
  const words = (n: number): string => Array.from({ length: n }, (_, i) => `w${i}`).join(' ');

  it('sends text of up to three messages as they are, saying nothing more', () => {
    expect(splitCapped('hello')).toEqual({ parts: ['hello'], inFile: false });
    const three = words(1000); // about 4,900 characters
    const { parts, inFile } = splitCapped(three);
    expect(inFile).toBe(false);
    expect(parts).toEqual(splitMessage(three));
    expect(parts).toHaveLength(3);
  });

  it('sends longer text as one message, its start, saying the whole is in the file', () => {
    const long = 'word '.repeat(13_000).trim(); // 65 KB: 33 messages
    expect(splitMessage(long)).toHaveLength(33);
    const { parts, inFile } = splitCapped(long);
    expect(inFile).toBe(true);
    expect(parts).toHaveLength(1);
    expect(parts[0]!.length).toBeLessThanOrEqual(2000);
    expect(parts[0]!.endsWith(`\n-# …the whole message is in ${LONG_TEXT_FILE}`)).toBe(true);
    expect(long.startsWith(parts[0]!.split('\n')[0]!)).toBe(true);
  });

  it('closes what is open where the start shown ends, before the note', () => {
    const code = `\`\`\`js\n${'let a = 1;\n'.repeat(700)}\`\`\``;
    const [part] = splitCapped(code).parts;
    expect(part).toMatch(/^```js\n(let a = 1;\n)+```\n-# …the whole message is in message\.txt$/);
    expect(part!.length).toBeLessThanOrEqual(2000);
  });

  it('takes another cap and limit', () => {
    expect(splitCapped(words(30), 2, 50).parts).toHaveLength(1);
    expect(splitCapped(words(20), 2, 50)).toMatchObject({ inFile: false, parts: splitMessage(words(20), 50) });
  });
});

describe('splitMessage', () => {
  it('keeps short messages whole', () => {
    expect(splitMessage('hello')).toEqual(['hello']);
    expect(splitMessage('')).toEqual([]);
  });

  it('splits at line breaks within the limit', () => {
    const lines = Array.from({ length: 30 }, (_, i) => `line ${i} ${'x'.repeat(90)}`);
    const parts = splitMessage(lines.join('\n'), 1000);
    expect(parts.every((p) => p.length <= 1000)).toBe(true);
    expect(parts.join('\n')).toBe(lines.join('\n'));
  });

  it('splits a long line at spaces, or anywhere if it must', () => {
    const words = Array.from({ length: 100 }, () => 'word').join(' ');
    const parts = splitMessage(words, 50);
    expect(parts.every((p) => p.length <= 50)).toBe(true);
    expect(parts.join(' ')).toBe(words);
    expect(splitMessage('x'.repeat(120), 50).join('')).toBe('x'.repeat(120));
  });

  it('closes and reopens a code block cut in two', () => {
    const code = '```js\n' + Array.from({ length: 40 }, (_, i) => `let v${i} = ${i};`).join('\n') + '\n```';
    const parts = splitMessage(code, 200);
    expect(parts.length).toBeGreaterThan(1);
    for (const p of parts) {
      expect(p.length).toBeLessThanOrEqual(200);
      expect(p.startsWith('```js\n')).toBe(true);
      expect(p.endsWith('```')).toBe(true);
    }
  });

  it('never splits a surrogate pair', () => {
    const parts = splitMessage('😀'.repeat(30), 15);
    for (const p of parts) expect(p).not.toMatch(/[\ud800-\udbff]$|^[\udc00-\udfff]/);
    expect(parts.join('')).toBe('😀'.repeat(30));
  });

  // Each part reads as its stretch of the whole did: markup open at a cut is closed and reopened
  // (what is added counts towards the limit), and a quote goes on quoted.
  it.each<[string, string, number, string[]]>([
    ['a spoiler (its second half would show in clear)', html(`<span data-mx-spoiler>${'word '.repeat(12)}end</span>`).content, 40,
      ['||word word word word word word word||', '||word word word word word end||']],
    ['inline code (the rest would be read as markdown: bold, links, mentions)', html('<code>x x x x x x x x **b** [l](https://e.org) &lt;@&amp;222&gt;</code>').content, 40,
      ['`x x x x x x x x **b**`', '`[l](https://e.org) <@&222>`']],
    ['inline code of two backticks (it holds one)', html('<code>a`b a`b a`b a`b a`b a`b a`b</code>').content, 24,
      ['`` a`b a`b a`b a`b ``', '`` a`b a`b a`b ``']],
    ['formatting inside formatting, outermost first', html(`<b>bold <i>${'ital '.repeat(6)}</i>done</b>`).content, 30,
      ['**bold *ital ital ital ital***', '***ital ital* done**']],
    ['bold across the lines of a quote', html(`<blockquote><b>${'line<br>'.repeat(6)}</b></blockquote>`).content, 30,
      ['> **line\n> line\n> line**', '> **line\n> line\n> line**']],
    ['a quoted line cut mid-line', `> ${'word '.repeat(10).trim()}`, 30, ['> word word word word word', '> word word word word word']],
    ['a code block in a quote', `> \`\`\`js\n${'> let a = 1;\n'.repeat(4)}> \`\`\``, 50,
      ['> ```js\n> let a = 1;\n> let a = 1;\n> ```', '> ```js\n> let a = 1;\n> let a = 1;\n> ```']],
    ['a link with spaces in its text, whole to the next part', `${'word '.repeat(5)}[a link text](https://example.org/x) end`, 45,
      ['word word word word word', '[a link text](https://example.org/x) end']],
    ['an escaped star before a closing marker (it would pair with it)', `**${'a\\* '.repeat(8).trim()}**`, 22,
      ['**a\\* a\\* a\\* a\\*\u200b**', '**a\\* a\\* a\\* a\\***']],
  ])('closes and reopens what is cut in two: %s', (_name, content, max, expected) => {
    const parts = splitMessage(content, max);
    expect(parts).toEqual(expected);
    for (const p of parts) expect(p.length).toBeLessThanOrEqual(max);
  });

  // a cut mid-line starts a message there: what Discord reads as a block at a message's start is escaped
  it.each<[string, string]>([
    ['# ', '\\# HEADING y'],
    ['## ', '\\## HEADING y'],
    ['> ', '\\> HEADING y'],
    ['>>> ', '\\>>> HEADING y'],
    ['-# ', '\\-# HEADING y'],
    ['- ', '\\- HEADING y'],
    ['1. ', '1\\. HEADING y'],
  ])('never starts a part with a block that was none: %s', (marker, second) => {
    const parts = splitMessage(`${'x'.repeat(1999)} ${marker}HEADING y`);
    expect(parts).toEqual(['x'.repeat(1999), second]);
  });

  it('leaves a real block at the start of a line as it is', () => {
    expect(splitMessage(`${'x'.repeat(1999)}\n# HEADING`)).toEqual(['x'.repeat(1999), '# HEADING']);
  });
});
