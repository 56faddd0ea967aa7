/**
 * Seeded property tests for the Discord converters (packages/discord/src/convert/). Message text on
 * both sides is hostile input: these generate broken and malicious Matrix HTML, Discord markdown
 * and mention syntax, control characters, emoji, surrogates, combining marks and very long words,
 * and check what the converters promise in their doc comments:
 *
 * - Matrix → Discord: nothing a Matrix user types becomes a mention, a channel link, a custom emoji
 *   or a live @everyone/@here unless they pilled it (and the resolver resolved it), used a
 *   mentionable `@Role` or @everyone and may ping; "live" is what the package's own model of
 *   Discord's client, {@link parseDiscordMarkdown}, reads as a token outside code. Plain text shows
 *   as typed. `splitMessage` keeps Discord's 2000-character limit without losing text or creating
 *   tokens; `webhookUsername` and `replyQuote` keep theirs.
 * - Discord → Matrix: `formatted_body` is well-formed HTML made only of the converter's own
 *   vocabulary, with only http(s) links and mxc:// images; `body` carries all of its text; plain
 *   chat stays plain.
 *
 * Deterministic: the runner and its seeds are in ../fuzz.ts.
 */
import { Buffer } from 'node:buffer';
import { describe, it } from 'vitest';
import {
  allowedMentions, discordToMatrix, escapeHtml, matrixToDiscord, parseDiscordMarkdown, replyQuote, splitMessage, webhookUsername,
  type DiscordToMatrixResolver, type MatrixToDiscordResolver, type MdNode,
} from '../../../packages/discord/src/convert/index.js';
import { check, forAll as runProperty, shrinkFields, show, type Rng } from '../fuzz.js';

/** Every property here shrinks a failing input field by field (the runner: ../fuzz.ts). */
function forAll<T extends object>(name: string, runs: number, generate: (r: Rng) => T, property: (input: T) => void): void {
  runProperty(name, runs, generate, property, shrinkFields<T>());
}

// ---------------------------------------------------------------------------------------------
// Checks shared by the properties.

/** Valid Unicode: survives a round trip through UTF-8 unchanged. */
const wellFormed = (s: string): boolean => s === Buffer.from(s, 'utf8').toString('utf8');
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** The control characters matrixToDiscord drops (its CONTROLS): tab, LF and CR may stay. */
const DROPPED_CONTROLS = /[\x00-\x08\x0B\x0C\x0E-\x1F\x7F]/;
const codePoints = (s: string): number => [...s].length;

type Token =
  | { t: 'user' | 'role' | 'channel'; id: string }
  | { t: 'emoji'; id: string }
  | { t: 'timestamp' | 'everyone' | 'here' };

/** Is `nodes[i]` (an `@everyone` or `@here`) inside an e-mail address, `me@here.com`? */
function inAddress(nodes: MdNode[], i: number): boolean {
  const before = nodes[i - 1], after = nodes[i + 1];
  // (the converter looks at the characters: `.` and a letter or digit, which may start a URL here)
  return before?.t === 'text' && /[\w.]$/.test(before.v) && after?.t === 'text'
    && (/^\.[A-Za-z0-9]/.test(after.v) || (after.v === '.' && nodes[i + 2]?.t === 'link'));
}

/**
 * The tokens Discord's client shows as mentions, channel links, emojis and timestamps in content,
 * as the package's own parser reads it: code spans and blocks hold none. An `@everyone` or `@here`
 * inside an e-mail address (`me@here.com`) is not counted: the converter leaves addresses whole on
 * purpose (it is no mention, so allowed_mentions never lets it ping; e2e discord-messages).
 */
function liveTokens(content: string): Token[] {
  const out: Token[] = [];
  const walk = (nodes: MdNode[]): void => {
    for (const [i, n] of nodes.entries()) {
      switch (n.t) {
        case 'user': case 'role': case 'channel': out.push({ t: n.t, id: n.id }); break;
        case 'emoji': out.push({ t: 'emoji', id: n.id }); break;
        case 'everyone': case 'here': if (!inAddress(nodes, i)) out.push({ t: n.t }); break;
        case 'timestamp': out.push({ t: n.t }); break;
        case 'list': n.items.forEach(walk); break;
        default: if ('c' in n) walk(n.c);
      }
    }
  };
  walk(parseDiscordMarkdown(content));
  return out;
}

/** What Discord shows of content as text, if it is only text and links showing their URL; else undefined. */
function plainTextOf(content: string): string | undefined {
  let s = '';
  const nodes = parseDiscordMarkdown(content);
  for (const [i, n] of nodes.entries()) {
    if (n.t === 'text') s += n.v;
    else if ((n.t === 'everyone' || n.t === 'here') && inAddress(nodes, i)) s += `@${n.t}`; // an address, left whole
    else if (n.t === 'br') s += '\n';
    else if (n.t === 'link' && n.c.length === 1 && n.c[0]!.t === 'text' && n.c[0]!.v === n.href) s += n.href;
    else return undefined;
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Generators of hostile content.

const CONTROLS = ['\0', '\x01', '\x07', '\x08', '\t', '\x0B', '\x0C', '\x1B', '\x7F', '\r', '\n', '\r\n', '\x85', '\u2028', '\u200B', '\u200D', '\u202E', '\uFEFF'];
const EMOJI = ['😀', '👍🏽', '👨‍👩‍👧‍👦', '🇫🇷', '1️⃣', '🏳️‍🌈', '❤️'];
const WORDS = ['hello', 'world', 'a', 'x', '12', 'café', '日本語', 'Привет', 'مرحبا', 'e\u0301', 'snake_case', 'C:\\path', 'a.b', 'foo@bar.org', 'mods', 'Mod'];
const MENTIONS = [
  '<@123>', '<@!123>', '<@111>', '<@&222>', '<@&999>', '<#333>', '<#1>', '<:x:444>', '<a:x:1>', '<a:dance:445>', '<t:0>', '<t:1700000000:R>', '<t:-99999999999999>',
  '<@12345678901234567890>', '<@\u200b123>', '<\u200b@123>', '<', '<@', '<a', '<t', '@', '>', '123>', ':x:1>', 'a:x:1>', 't:1>',
];
const EVERYONES = ['@everyone', '@here', '@Everyone', 'x@everyone', 'a.@here', '@everyone_', '@here_x', '@hereby', '@everyone1', '@everyoneé', '@\u200beveryone', '@@here', '\\@everyone', '@mods', '@Mod Squad', '@mods_', '@c++'];
const MARKDOWN = ['*', '**', '***', '_', '__', '~~', '||', '`', '``', '```', '```js\n', '\\', '> ', '>>> ', '# ', '## ', '### ', '-# ', '- ', '* ', '1. ', '99. ', '[', ']', '(', ')', '](', '[x](https://e.org/a)', '[**b**](<https://e.org>)'];
const URLS = ['https://example.org/a_b*c', 'https://x.y/@mods', 'https://x.y/@everyone', 'https://x.y/~@here', 'http://x.y.', 'https://en.wikipedia.org/wiki/A_(b)', 'http://x.y/"q"', '<https://example.org>', 'https://x.y/<@123>', 'javascript:alert(1)', 'mailto:a@everyone.org'];
const HTMLISH = ['<b>', '</i>', '&amp;', '&lt;', '"', "'", '<img src=x onerror=alert(1)>', '<script>alert(1)</script>', '<a href="javascript:x">'];

/** One piece of hostile text. `lone`: may include unpaired surrogates. */
function atom(r: Rng, lone: boolean): string {
  switch (r.int(0, 13)) {
    case 0: case 1: return r.pick(WORDS);
    case 2: return ' '.repeat(r.int(1, 3));
    case 3: return r.pick(CONTROLS);
    case 4: return r.pick(EMOJI);
    case 5: return String.fromCodePoint(r.int(0x10000, 0x10ffff));
    case 6: return 'o' + '\u0301\u0308\u0327'.slice(0, r.int(1, 3)).repeat(r.int(1, r.chance(0.1) ? 100 : 3));
    case 7: return r.pick(MENTIONS);
    case 8: return r.pick(EVERYONES);
    case 9: return r.pick(MARKDOWN);
    case 10: return r.pick(URLS);
    case 11: return r.pick(HTMLISH);
    case 12: return r.pick(['x', 'é', '😀', '_', '*']).repeat(r.int(20, r.chance(0.2) ? 2500 : 200));
    default: return lone ? r.pick(['\uD800', '\uDFFF', 'a\uDC00', '\uDBFF\uDBFF']) : String.fromCharCode(r.int(0x20, 0x7e));
  }
}

function hostileText(r: Rng, opts: { lone?: boolean; atoms?: number } = {}): string {
  let s = '';
  for (let n = r.int(0, opts.atoms ?? 25); n > 0; n--) s += atom(r, opts.lone ?? false);
  return s;
}

/** Matrix ids in pills: ghosts of Discord users (resolvable), Matrix users, rooms, and junk. */
const PILL_TARGETS = [
  '@discord_111:example.org', '%40discord_112%3Aexample.org', '@discord_113:example.org', '@alice:example.org', '@everyone:example.org',
  '!bridged:example.org', '#general:example.org?via=x', '#other:example.org', '!bridged:example.org/$event', '@%ZZ:x', '@', '%40',
  '@a b:x', '@\n<@123>:x', '@😀\u0301:x',
];
const HREFS = [
  'https://example.org/', 'https://example.org/a_(b)', 'http://x.y/ <@123> (', 'https://x.y/)<@123>', 'https://x.y/\n<@123>', 'https://x.y/><#333>',
  'https://x.y/\t@everyone', 'https://x.y/ @here', 'https://x.y/`', 'https://x.y/||', 'mailto:a@everyone', 'mailto:@here', 'mailto:x@y.z', 'MAILTO:<@123>',
  'javascript:alert("x")', 'JaVaScRiPt:alert(1)', 'data:text/html,<script>', '', ' ', 'matrix:u/discord_111:example.org', 'matrix:r/general:example.org', 'matrix:u/%ZZ',
];
const IMG_SRCS = [
  'mxc://example.org/party', 'mxc://example.org/dance', 'mxc://example.org/nope', 'mxc://example.org/cat', 'mxc://example.org/a b) <@123> (', 'mxc://x/<@&222>',
  'https://example.org/cat.png', 'https://x.y/a) <@123> (', 'http://x.y/\n@everyone', 'javascript:alert(1)', '',
];
const KNOWN_TAGS = ['b', 'strong', 'i', 'em', 'cite', 'u', 'ins', 'del', 's', 'strike', 'span', 'font', 'code', 'p', 'div', 'section', 'details', 'summary',
  'h1', 'h2', 'h3', 'h4', 'h6', 'pre', 'blockquote', 'ul', 'ol', 'li', 'table', 'tr', 'td', 'th', 'a', 'mx-reply', 'script', 'style', 'title', 'sup', 'sub'];
const UNKNOWN_TAGS = ['blink', 'x-custom', 'constructor', '__proto__', 'svg', 'math', 'iframe', 'B', 'SCRIPT', 'a:b', 'hasOwnProperty'];
const ENTITIES = ['&amp;', '&lt;', '&gt;', '&quot;', '&#39;', '&nbsp;', '&#x1F600;', '&#0;', '&#13;&#10;', '&#xD800;', '&#99999999;', '&#x;', '&bogus;', '&amp', '&', '&#64;', '&#x40;everyone', '&lt;@123&gt;'];

function attributes(r: Rng, tag: string): string {
  const q = (v: string): string => r.pick([`"${v.replace(/"/g, '&quot;')}"`, `'${v.replace(/'/g, '&#39;')}'`, `"${v}"`]);
  switch (tag) {
    case 'a': return r.chance(0.5) ? ` href=${q(`https://matrix.to/#/${r.pick(PILL_TARGETS)}`)}` : r.chance(0.9) ? ` href=${q(r.pick(HREFS))}` : '';
    case 'span': return r.chance(0.4) ? r.pick([' data-mx-spoiler', ' data-mx-spoiler="why"', ` data-mx-spoiler=${q(hostileText(r, { atoms: 3 }))}`]) : '';
    case 'font': return ` data-mx-color=${q(r.pick(['#ff0000', 'red', '"><b>']))}`;
    case 'ol': return r.chance(0.5) ? ` start=${q(r.pick(['3', '0', '-2', '1e9', 'x', '99999999999999999999']))}` : '';
    case 'code': case 'pre': return r.chance(0.5) ? ` class=${q(r.pick(['language-js', 'language-"><', 'language-c++ x', 'language-']))}` : '';
    default: return r.chance(0.1) ? ` onclick=${q('alert(1)')} style=${q('x')}` : '';
  }
}

/** Text as it appears between tags: escaped, raw, or entity soup. */
function htmlText(r: Rng, lone: boolean): string {
  const t = hostileText(r, { lone, atoms: 6 });
  return r.chance(0.6) ? t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;') : t;
}

/** Random Matrix HTML: nested, unclosed, misnested and stray tags, pills, images, code, entities. */
function hostileHtml(r: Rng, lone = false): string {
  const stack: string[] = [];
  let html = '';
  for (let n = r.int(0, 30); n > 0; n--) {
    const roll = r.int(0, 19);
    if (roll <= 4) {
      html += htmlText(r, lone);
    } else if (roll === 5) {
      html += r.pick(ENTITIES);
    } else if (roll <= 9) {
      const tag = r.chance(0.85) ? r.pick(KNOWN_TAGS) : r.pick(UNKNOWN_TAGS);
      html += `<${tag}${attributes(r, tag)}>`;
      stack.push(tag);
    } else if (roll <= 11 && stack.length > 0) {
      html += `</${stack.pop()}>`;
    } else if (roll === 12 && stack.length > 0) {
      html += `</${stack.splice(r.int(0, stack.length - 1), 1)[0]}>`; // misnested
    } else if (roll === 13) {
      html += r.pick(['<br>', '<br/>', '<hr>', '</p>', '</li>', '<!-- c -->', '<!-- unclosed', '<![CDATA[<@123>]]>', '<', '</', '< b>', '<b', '<a href="']);
    } else if (roll === 14) {
      const label = r.pick(['', 'Bobby', '@everyone', 'here', '<@123>', '&lt;@123&gt;', htmlText(r, lone)]);
      html += `<a href="https://matrix.to/#/${r.pick(PILL_TARGETS)}">${label}</a>`;
    } else if (roll === 15) {
      const label = r.pick(['', 'site', 'https://x.y/ @here', htmlText(r, lone)]);
      html += `<a href="${r.pick(HREFS)}">${label}</a>`;
    } else if (roll === 16) {
      const alt = r.pick([':party:', ':nope:', '@everyone', '<@123>', ')<@123>(', '](https://evil) <@1>', 'x\n@here', htmlText(r, lone)]);
      html += `<img${r.chance(0.5) ? ' data-mx-emoticon' : ''} src="${r.pick(IMG_SRCS)}" alt="${alt.replace(/"/g, '&quot;')}">`;
    } else if (roll === 17) {
      const code = r.pick(['`', '``', '```', '````', '`````', '``` ```', '<@123>', '@everyone', '\n', ' ']).repeat(r.int(1, 3)) + htmlText(r, lone);
      html += r.chance(0.5) ? `<code>${code}</code>` : `<pre><code${attributes(r, 'code')}>${code}</code></pre>`;
    } else if (roll === 18) {
      html += `<mx-reply><blockquote><a href="https://matrix.to/#/!r:x/$e">In reply to</a> ${htmlText(r, lone)}</blockquote></mx-reply>`;
    } else {
      const tag = r.pick(['ul', 'ol']);
      html += `<${tag}${attributes(r, tag)}>${Array.from({ length: r.int(0, 3) }, () => `<li>${htmlText(r, lone)}</li>`).join('')}</${tag}>`;
    }
  }
  if (r.chance(0.5)) while (stack.length > 0) html += `</${stack.pop()}>`;
  return html;
}

// ---------------------------------------------------------------------------------------------
// Matrix → Discord

const ROLES = [
  { id: '222', name: 'mods', mentionable: true }, { id: '223', name: 'Mod Squad', mentionable: true }, { id: '224', name: 'quiet', mentionable: false },
  { id: '225', name: 'c++', mentionable: true }, { id: '226', name: '😀', mentionable: true }, { id: '1', name: '@everyone', mentionable: true },
];
const MENTIONABLE = new Set(ROLES.filter((x) => x.mentionable && x.name !== '@everyone').map((x) => x.id));

/** A resolver like the bridge's, which records what it resolved: only that may become a mention. */
function recordingResolver(allowEveryone: boolean) {
  const resolved = { users: new Set<string>(), channels: new Set<string>(), emojis: new Set<string>() };
  const USERS: Record<string, string> = { '@discord_111:example.org': '111', '@discord_112:example.org': '112', '@discord_113:example.org': '113' };
  const ROOMS: Record<string, string> = { '!bridged:example.org': '333', '#general:example.org': '334' };
  const EMOJIS: Record<string, { id: string; name: string; animated: boolean }> = {
    'mxc://example.org/party': { id: '444', name: 'party', animated: false }, 'mxc://example.org/dance': { id: '445', name: 'dance', animated: true },
  };
  const resolver: MatrixToDiscordResolver = {
    user: (mxid) => { const id = USERS[mxid]; if (id) resolved.users.add(id); return id; },
    room: (room) => { const id = ROOMS[room]; if (id) resolved.channels.add(id); return id; },
    emoji: (mxc) => { const e = EMOJIS[mxc]; if (e) resolved.emojis.add(e.id); return e; },
    // as core's media links: a proxy URL for a well-formed mxc://, else the mxc:// URL itself
    mediaUrl: (mxc) => /^mxc:\/\/[^/]+\/[A-Za-z0-9_-]+$/.test(mxc) ? `https://bridge.example.org/_trestle/media/v1/${mxc.slice(6)}/sig` : mxc,
    roles: ROLES,
    allowEveryone,
    // (one power level allows both: see ToDiscord.mayPing)
    allowRoles: allowEveryone,
  };
  return { resolver, resolved };
}

interface ToDiscordCase { body: string; html: string; useHtml: string; allowEveryone: string }

function toDiscordCase(r: Rng, lone: boolean): ToDiscordCase {
  // flags are strings so that the shrinker can drop them ('' is false)
  return { body: hostileText(r, { lone }), html: hostileHtml(r, lone), useHtml: r.chance(0.8) ? 'y' : '', allowEveryone: r.chance(0.2) ? 'y' : '' };
}

function runToDiscord(c: ToDiscordCase, emote = false) {
  const { resolver, resolved } = recordingResolver(c.allowEveryone !== '');
  const out = matrixToDiscord(c.useHtml ? { body: c.body, formattedBody: c.html } : { body: c.body }, resolver, { emote });
  return { out, resolved };
}

/** Every token live in `content` was made on purpose: resolved, mentionable, or allowed. */
function checkTokens(content: string, c: ToDiscordCase, out: ReturnType<typeof matrixToDiscord>, resolved: ReturnType<typeof recordingResolver>['resolved'], what: string): void {
  for (const tok of liveTokens(content)) {
    const ok = tok.t === 'user' ? out.users.includes(tok.id)
      : tok.t === 'role' ? out.roles.includes(tok.id)
        : tok.t === 'channel' ? resolved.channels.has(tok.id)
          : tok.t === 'emoji' ? resolved.emojis.has(tok.id)
            : tok.t === 'timestamp' ? false // nothing in Matrix HTML stands for one: typed `<t:1>` must stay text
              : c.allowEveryone !== '' && out.everyone;
    check(ok, () => `${what}: live ${show(tok)} nobody asked for in ${show(content)}`);
  }
}

describe('fuzz: matrixToDiscord', () => {
  it('never throws, on any input', () => {
    forAll('matrixToDiscord no throw', 1_500, (r) => toDiscordCase(r, r.chance(0.3)), (c) => {
      const { out } = runToDiscord(c);
      check(typeof out.content === 'string', () => 'no content');
    });
  });

  it('writes valid Unicode without the dropped control characters', () => {
    forAll('matrixToDiscord well-formed', 1_500, (r) => toDiscordCase(r, false), (c) => {
      if (!wellFormed(c.body) || !wellFormed(c.html)) return; // a shrunk input may cut a pair
      const { out } = runToDiscord(c);
      check(wellFormed(out.content), () => `lone surrogate at ${out.content.search(LONE_SURROGATE)} of ${show(out.content)}`);
      check(!DROPPED_CONTROLS.test(out.content), () => `control character at ${out.content.search(DROPPED_CONTROLS)} of ${show(out.content)}`);
    });
  });

  it('pings and links only what was pilled, resolved, mentionable or allowed', () => {
    forAll('matrixToDiscord no stray mentions', 3_000, (r) => toDiscordCase(r, r.chance(0.2)), (c) => {
      const { out, resolved } = runToDiscord(c);
      // what the caller turns into allowed_mentions
      for (const id of out.users) check(resolved.users.has(id), () => `user ${id} in users, but no pill resolved to it`);
      for (const id of out.roles) check(MENTIONABLE.has(id), () => `role ${id} in roles, but it is not a mentionable role`);
      check(out.roles.length === 0 || c.allowEveryone !== '', () => `roles ${show(out.roles)} mentioned without allowRoles`);
      check(!out.everyone || c.allowEveryone !== '', () => 'everyone set without allowEveryone');
      const allowed = allowedMentions(out);
      check(allowed.parse.every((p) => p === 'everyone' && c.allowEveryone !== ''), () => `allowed_mentions.parse ${show(allowed.parse)}`);
      // what Discord shows: the content as sent, and as an emote
      checkTokens(out.content, c, out, resolved, 'content');
      const asEmote = runToDiscord(c, true);
      checkTokens(asEmote.out.content, c, asEmote.out, asEmote.resolved, 'emote');
    });
  });

  // Inputs the property above found (with FUZZ_SEED 1..100), kept so they stay fixed whatever the seed.
  it.each([
    ['code inside bold', '<h6><code>@everyone**</code></h6>'],
    ['code inside underline', '<u><code>&lt;:x:4&gt;__</code></u>'],
    ['two code spans side by side', '<code>@</code><code>`@everyone</code>'],
    ['a code block inside bold', '<b><pre>**&lt;@1&gt;</pre></b>'],
    ['a code block inside italics', '<i><pre>*@here</pre></i>'],
    ['a URL after an escaped star inside italics', '<cite>*http://dp</cite><@1>'],
    ['a link shown as its URL inside underline', '<blockquote><u><a href=http://@here></a><p>x'],
    ['a link whose text is a star inside italics', '<i><a href=http://">*</i><@2>'],
    ['bold around strike around bold, then code', '<strong><s><b>http://re<mx-reply><blockquote></mx-reply><code> @everyone'],
    ['an image inside a link', '<a href=http://"><img src="mxc://g/e">http:///<@2>'],
    ['italics around bold, then code with a star', '<cite><b>x</b><<code>*&lt@2>'],
    ['a code block in a quote, after a line break', '<blockquote><pre>\n&lt;t:0></pre></blockquote>'],
    ['a code block in a list item', '<ul><li><pre>&ltt:0&gt'],
    ['code in a link\'s text holding `](`', '<a href=http://"><code><@1>](http://'],
    ['a code block in a link\'s text holding `](`', '<a href=http://"><pre>](http://a)&lt:x:4&gt'],
    ['a URL with a `]` in an image\'s alt text', '<img src=http://" alt=http://]i><@2>'],
    ['an escaped star before italics close, in underline and bold', '<u><B>*<pre>&lt@3&gt**'],
    ['a URL ending in a backslash before italics close', 'http://󏾍\\<code><@3>*'],
  ])('found: %s leaves no token live, as a message or an emote', (_name, html) => {
    const c = { body: 'x', html, useHtml: 'y', allowEveryone: '' };
    for (const emote of [false, true]) {
      const { out, resolved } = runToDiscord(c, emote);
      checkTokens(out.content, c, out, resolved, emote ? 'emote' : 'content');
    }
  });

  it('shows plain text as typed: only text (and the URLs in it) on Discord', () => {
    // No roles, so no `@Role` becomes a mention. Angle brackets around a URL are Discord's way
    // to suppress its embed and are hidden there, so the body holds no `<` next to a URL: the
    // converter leaves URLs alone on purpose (they stay links).
    const noRoles = { mediaUrl: () => undefined };
    forAll('matrixToDiscord plain text as typed', 2_000, (r) => ({ body: hostileText(r) }), (c) => {
      // here, so that shrinking keeps to it; after the dropped controls, which could stand between
      const body = c.body.replace(/[\x00-\x08\x0B\x0C\x0E-\x1F\x7F]/g, '').replace(/<+(?=https?:)/g, '');
      const out = matrixToDiscord({ body }, noRoles);
      const shown = plainTextOf(out.content);
      check(shown !== undefined, () => `formatting or tokens in ${show(out.content)}: ${show(parseDiscordMarkdown(out.content))}`);
      // defused @everyone/@here show a zero-width space after the `@`
      const expected = body.replace(/[\x00-\x08\x0B\x0C\x0E-\x1F\x7F]/g, '').split(/\r\n|\n|\r/).join('\n').trim();
      check(shown.replace(/@\u200b/g, '@') === expected.replace(/@\u200b/g, '@'),
        () => `Discord shows ${show(shown)}, typed ${show(expected)}; content ${show(out.content)}`);
    });
  });

  it('shows text in plain HTML as typed, whichever inline tags split it', () => {
    // Text split by tags that carry no formatting (span, font, unknown tags, empty bold) must not
    // join into markdown or tokens across the tags. The case is a spec, one character a piece, so
    // that shrinking it leaves well-formed HTML.
    const noRoles = { mediaUrl: () => undefined };
    const PIECES = ['<', '@', '123>', '#', '333>', ':', 'x:1>', 'a', 't', '-', '>', ' ', '1', '.', '*', '_', '`', '|', '~', '\\', '[', ']', '(', ')', 'x', '@everyone', 'here', 'é', 'https://x.y', '#', ' '];
    const WRAPS = ['', '', '<span>', '<font color="red">', '<x-y>', '<sup>', '<b></b>'];
    const decodeSpec = (spec: string): { html: string; typed: string } => {
      let html = '';
      let typed = '';
      for (const ch of spec) {
        const k = ch.charCodeAt(0) - 0x100;
        const piece = PIECES[k % PIECES.length]!;
        const wrap = WRAPS[Math.floor(k / PIECES.length)]!;
        const esc = piece.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
        html += wrap === '' ? esc : wrap.endsWith('</b>') ? `${esc}${wrap}` : `${wrap}${esc}</${wrap.slice(1).split(/[ >]/)[0]}>`;
        typed += piece;
      }
      return { html, typed };
    };
    forAll('matrixToDiscord plain HTML as typed', 2_000, (r) => ({
      spec: Array.from({ length: r.int(1, 14) }, () => String.fromCharCode(0x100 + r.int(0, PIECES.length * WRAPS.length - 1))).join(''), para: r.chance(0.3) ? 'y' : '',
    }), (c) => {
      const { html, typed } = decodeSpec(c.spec);
      if (typed.trim() === '') return; // no text: the body is sent instead
      const out = matrixToDiscord({ body: 'fallback', formattedBody: c.para ? `<p>${html}</p>` : html }, noRoles);
      const shown = plainTextOf(out.content);
      check(shown !== undefined, () => `HTML ${show(html)}: formatting or tokens in ${show(out.content)}: ${show(parseDiscordMarkdown(out.content))}`);
      // angle brackets around a URL are Discord's way to suppress its embed, hidden there (as above)
      const expected = typed.replace(/ +/g, ' ').trim().replace(/<(https?:\/\/[^\s>]+)>/g, '$1');
      check(shown.replace(/@\u200b/g, '@') === expected, () => `HTML ${show(html)}: Discord shows ${show(shown)}, typed ${show(expected)}; content ${show(out.content)}`);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Sending: splitting, webhook names, reply quotes

/** The non-space characters of `sub`, in order, are among those of `s`. */
function keepsText(sub: string, s: string): boolean {
  const a = sub.replace(/\s/g, '');
  const b = s.replace(/\s/g, '');
  let j = 0;
  for (let i = 0; i < b.length && j < a.length; i++) if (a[j] === b[i]) j++;
  return j === a.length;
}

describe('fuzz: sending to Discord', () => {
  it('splits converted messages into parts within the limit, losing no text', () => {
    forAll('splitMessage parts', 1_000, (r) => ({ ...toDiscordCase(r, false), max: String(r.pick([2000, 2000, 300, 100, 40])) }), (c) => {
      if (!wellFormed(c.body) || !wellFormed(c.html)) return;
      const max = Math.max(40, Number(c.max) || 0); // at least room for a code fence; the shrinker may go lower
      const { out } = runToDiscord(c);
      const parts = splitMessage(out.content, max);
      check(out.content.trim() === '' ? parts.length === 0 : parts.length > 0, () => `${parts.length} parts of ${show(out.content)}`);
      for (const p of parts) {
        check(p.length <= max, () => `a part of ${p.length} > ${max}: ${show(p)}`);
        check(wellFormed(p), () => `a part with a lone surrogate: ${show(p)}`);
      }
      check(keepsText(out.content, parts.join('\n')), () => `text lost: ${show(out.content)} became ${show(parts)}`);
    });
  });

  it('closes and reopens a code block cut in two: what is in it stays code', () => {
    // (a URL too long for a part is still cut in the middle: the next part starts with what was in it)
    forAll('splitMessage code blocks', 1_000, (r) => ({
      html: Array.from({ length: r.int(1, 4) }, () => `${r.chance(0.5) ? `<p>${Array.from({ length: r.int(1, 30) }, () => r.pick(WORDS)).join(' ')}</p>` : ''}<pre><code${attributes(r, 'code')}>${
        Array.from({ length: r.int(1, 12) }, () => r.pick([...MENTIONS, ...EVERYONES, '\n', ' ', '`', '```', '**', '||', 'word ', 'x'.repeat(r.int(1, 60))])).join('')}</code></pre>`).join(''),
      max: String(r.pick([2000, 300, 100, 60])),
    }), (c) => {
      const max = Math.max(60, Number(c.max) || 0);
      const { out, resolved } = runToDiscord({ body: '', html: c.html, useHtml: 'y', allowEveryone: '' });
      const parts = splitMessage(out.content, max);
      for (const p of parts) {
        check(p.length <= max, () => `a part of ${p.length} > ${max}: ${show(p)}`);
        checkTokens(p, { body: '', html: c.html, useHtml: 'y', allowEveryone: '' }, out, resolved, `part of ${show(parts)}`);
      }
    });
  });

  it('closes and reopens formatting, spoilers and inline code cut in two: a spoiler stays hidden, code stays code', () => {
    const SECRET = ['secret', 'secret-2', 'secret!', '*secret*'];
    const IN_CODE = [...MENTIONS, '**b**', '||s||', '[x](https://e.org/a)', '# h', '> q', '- l', '1. n', '*', '`', '``', '\\', 'word'];
    forAll('splitMessage inline markup', 1_000, (r) => ({
      html: Array.from({ length: r.int(1, 8) }, () => {
        const n = r.int(1, r.chance(0.3) ? 300 : 30);
        const words = (from: string[]): string => Array.from({ length: n }, () => r.pick(from)).join(r.pick([' ', ' ', '<br>']));
        const tag = r.pick(['b', 'i', 'u', 'del']);
        switch (r.int(0, 3)) {
          case 0: return `<span data-mx-spoiler>${r.chance(0.5) ? `<${tag}>${words(SECRET)}</${tag}>` : words(SECRET)}</span>`;
          case 1: { const around = r.chance(0.5) ? tag : 'span'; return `<${around}><code>${escapeHtml(words(IN_CODE).replace(/<br>/g, ' '))}</code></${around}>`; }
          case 2: return `<${tag}>${escapeHtml(words(WORDS)).replace(/&lt;br&gt;/g, '<br>')}</${tag}>`;
          default: return ` ${escapeHtml(words([...WORDS, '#', '>', '-', '1.', '-#'])).replace(/&lt;br&gt;/g, '<br>')} `;
        }
      }).join(''),
      max: String(r.pick([2000, 300, 100, 60])),
    }), (c) => {
      const max = Math.max(60, Number(c.max) || 0);
      const { out, resolved } = runToDiscord({ body: '', html: c.html, useHtml: 'y', allowEveryone: '' });
      const parts = splitMessage(out.content, max);
      // what Discord shows in clear: spoiler words outside a spoiler, links (those in code are none)
      const inClear = (content: string): number => {
        let n = 0;
        const walk = (nodes: MdNode[], hidden: boolean): void => {
          for (const node of nodes) {
            if (node.t === 'text' && !hidden) n += node.v.split('secret').length - 1;
            if (node.t === 'link') n += 1;
            if (node.t === 'list') node.items.forEach((it) => walk(it, hidden));
            else if ('c' in node) walk(node.c, hidden || node.t === 'spoiler');
          }
        };
        walk(parseDiscordMarkdown(content), false);
        return n;
      };
      for (const p of parts) {
        check(p.length <= max, () => `a part of ${p.length} > ${max}: ${show(p)}`);
        checkTokens(p, { body: '', html: c.html, useHtml: 'y', allowEveryone: '' }, out, resolved, `part of ${show(parts)}`);
      }
      const shown = parts.reduce((n, p) => n + inClear(p), 0);
      check(shown <= inClear(out.content), () => `more in clear in the parts than in ${show(out.content)}: ${show(parts)}`);
      check(keepsText(out.content.replace(/[*_~|`\\]/g, ''), parts.join('\n')), () => `text lost: ${show(out.content)} became ${show(parts)}`);
    });
  });

  it('names webhooks within Discord\'s rules', () => {
    forAll('webhookUsername', 2_000, (r) => ({
      // Matrix user ids are printable ASCII without spaces (up to 255 characters)
      userId: `@${Array.from({ length: r.int(1, r.chance(0.2) ? 240 : 20) }, () => String.fromCharCode(r.int(0x21, 0x7e))).join('')}:example.org`, displayName: hostileText(r, { atoms: 6 }), network: r.chance(0.3) ? r.pick(['irc', 'discord', 'x'.repeat(90)]) : '',
      member: r.chance(0.3) ? 'pick' : '',
    }), (c) => {
      if (!wellFormed(c.userId) || !wellFormed(c.displayName)) return;
      const plainName = webhookUsername({ userId: c.userId, displayName: c.displayName });
      // Discord's names (username, global name, nickname) have at most 32 characters
      const members = new Set(c.member && codePoints(plainName) <= 32 ? [plainName.toLowerCase()] : []);
      const name = webhookUsername({ userId: c.userId, displayName: c.displayName, ...(c.network ? { ghostOf: { network: c.network } } : {}) }, members);
      check(codePoints(name) <= 80, () => `${codePoints(name)} characters: ${show(name)}`);
      check(wellFormed(name), () => `lone surrogate in ${show(name)}`);
      check(!/discord|clyde/i.test(name), () => `a word Discord refuses in ${show(name)}`);
      check(!members.has(name.toLowerCase()), () => `a member's name: ${show(name)}`);
      check(!/[\x00-\x1F\x7F]/.test(name), () => `a control character in ${show(name)}`);
    });
  });

  it('quotes a reply in one line, with at most 80 characters of snippet and no tokens from it', () => {
    forAll('replyQuote', 2_000, (r) => ({ snippet: hostileText(r), jump: r.chance(0.5) ? 'y' : '' }), (c) => {
      if (!wellFormed(c.snippet)) return;
      const q = replyQuote({ author: 'alice', snippet: c.snippet, ...(c.jump ? { jumpUrl: 'https://discord.com/channels/1/2/3' } : {}) });
      check(/^> alice[^\n]*\n$/.test(q), () => `not one quoted line: ${show(q)}`);
      check(wellFormed(q), () => `lone surrogate in ${show(q)}`);
      const snippet = /^> alice(?:: ([^\n]*?))?(?: \[↪\]\(<https:\/\/discord\.com\/channels\/1\/2\/3>\))?\n$/.exec(q)?.[1] ?? '';
      // what Discord shows of the snippet: text, at most 80 characters (without the defusing spaces)
      const shown = plainTextOf(snippet);
      check(shown !== undefined, () => `formatting in the snippet ${show(snippet)}`);
      check(codePoints(shown.replace(/\u200b/g, '')) <= 80, () => `snippet longer than 80: ${show(shown)}`);
      const tokens = liveTokens(q);
      check(tokens.length === 0, () => `live ${show(tokens)} in ${show(q)}`);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Discord → Matrix

/** The only markup discordToMatrix writes: tag → the attributes each may have, and how their values look. */
const VOCABULARY: Record<string, Record<string, RegExp>> = {
  strong: {}, em: {}, u: {}, del: {}, h1: {}, h2: {}, h3: {}, blockquote: {}, ul: {}, li: {}, pre: {}, br: {},
  span: { 'data-mx-spoiler': /^$/ },
  ol: { start: /^\d+$/ },
  code: { class: /^language-[A-Za-z0-9_+\-.#]+$/ },
  a: { href: /^(?:https?:\/\/\S+)$/ },
  font: { 'data-mx-color': /^#[0-9a-f]{6}$/ },
  img: { 'data-mx-emoticon': /^$/, src: /^mxc:\/\/\S+$/, alt: /^:\w+:$/, title: /^:\w+:$/, height: /^32$/ },
};
const REQUIRED: Record<string, string[]> = { span: ['data-mx-spoiler'], a: ['href'], font: ['data-mx-color'], img: ['data-mx-emoticon', 'src'] };
const VOID = new Set(['br', 'img']);
const decode = (s: string): string => s.replace(/&(amp|lt|gt|quot|#39);/g, (_m, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" } as Record<string, string>)[e]!);

/**
 * Check `html` against the converter's grammar: text with `<`, `>` and `&` escaped; tags and
 * attributes from {@link VOCABULARY}, double-quoted; balanced; no link inside a link (HTML parsers
 * split those). Returns the text, `<br>` as a line break.
 */
function checkHtml(html: string): string {
  const TOKEN = /<(\/?)([a-z0-9]+)((?: [a-z-]+(?:="[^"<>]*")?)*)>|&(?:amp|lt|gt|quot|#39);|[^<>&]+/y;
  const stack: string[] = [];
  let text = '';
  for (let pos = 0; pos < html.length;) {
    TOKEN.lastIndex = pos;
    const m = TOKEN.exec(html);
    check(m !== null, () => `not the converter's HTML at ${pos}: ${show(html.slice(pos, pos + 60))} in ${show(html)}`);
    pos += m[0].length;
    if (m[2] === undefined) { text += decode(m[0]); continue; }
    const [, close, tag, attrs] = m as unknown as [string, string, string, string];
    const allowed = VOCABULARY[tag];
    check(allowed !== undefined, () => `tag <${tag}> is not in the vocabulary: ${show(html)}`);
    if (close) {
      check(stack.pop() === tag && attrs === '', () => `unbalanced </${tag}> in ${show(html)}`);
      continue;
    }
    const seen = new Set<string>();
    for (const [, name, value] of attrs.matchAll(/ ([a-z-]+)(?:="([^"]*)")?/g)) {
      const re = allowed[name!];
      check(re !== undefined, () => `attribute ${name} on <${tag}> in ${show(html)}`);
      check(re.test(decode(value ?? '')), () => `${name}=${show(value)} on <${tag}> in ${show(html)}`);
      seen.add(name!);
    }
    for (const name of REQUIRED[tag] ?? []) check(seen.has(name), () => `<${tag}> without ${name} in ${show(html)}`);
    if (tag === 'br') text += '\n';
    if (VOID.has(tag)) continue;
    check(tag !== 'a' || !stack.includes('a'), () => `a link inside a link in ${show(html)}`);
    stack.push(tag);
  }
  check(stack.length === 0, () => `unclosed ${show(stack)} in ${show(html)}`);
  return text;
}

interface FromDiscordCase { content: string; userName: string; roleName: string; channelName: string }

/** Names come from Discord users and admins: hostile too. */
function fromDiscordCase(r: Rng, lone: boolean): FromDiscordCase {
  const name = (): string => r.pick(['Bobby', '<img src=x onerror=alert(1)>', '"quoted" & \'single\'', '**bold**', '</a><script>', 'a\nb', hostileText(r, { lone, atoms: 3 })]);
  return { content: hostileText(r, { lone, atoms: 30 }), userName: name(), roleName: name(), channelName: name() };
}

function fromDiscordResolver(c: FromDiscordCase): DiscordToMatrixResolver {
  return {
    user: (id) => (id === '111' ? { userId: '@discord_111:example.org', name: c.userName } : id === '123' ? { name: c.userName } : undefined),
    role: (id) => (id === '222' ? { name: c.roleName, color: 0xff0000 } : id === '999' ? { name: c.roleName, color: 0 } : undefined),
    channel: (id) => (id === '333' ? { name: c.channelName, room: '!room:example.org' } : id === '1' ? { name: c.channelName, room: '#a"b<c>:x' } : undefined),
    emoji: (e) => (e.id === '444' || e.id === '445' ? `mxc://example.org/${e.name}` : undefined),
  };
}

describe('fuzz: discordToMatrix', () => {
  it('never throws, on any input', () => {
    forAll('discordToMatrix no throw', 1_500, (r) => fromDiscordCase(r, true), (c) => {
      const out = discordToMatrix(c.content, fromDiscordResolver(c));
      check(typeof out.body === 'string', () => 'no body');
    });
  });

  it('writes only its own HTML: known tags and attributes, balanced, escaped, http(s) links, mxc:// images', () => {
    forAll('discordToMatrix own HTML', 3_000, (r) => fromDiscordCase(r, r.chance(0.2)), (c) => {
      const out = discordToMatrix(c.content, fromDiscordResolver(c));
      if (out.formattedBody === undefined) return;
      check(out.formattedBody !== '', () => 'an empty formatted_body');
      checkHtml(out.formattedBody);
    });
  });

  it('writes valid Unicode from valid Unicode, and a body holding all the text of its HTML', () => {
    forAll('discordToMatrix body and HTML agree', 2_000, (r) => fromDiscordCase(r, false), (c) => {
      if (![c.content, c.userName, c.roleName, c.channelName].every(wellFormed)) return;
      const out = discordToMatrix(c.content, fromDiscordResolver(c));
      check(wellFormed(out.body), () => `lone surrogate in body ${show(out.body)}`);
      if (out.formattedBody === undefined) return;
      check(wellFormed(out.formattedBody), () => `lone surrogate in formatted_body ${show(out.formattedBody)}`);
      const text = checkHtml(out.formattedBody);
      check(keepsText(text, out.body), () => `the HTML shows ${show(text)}, which the body ${show(out.body)} lacks`);
    });
  });

  it('keeps plain chat plain', () => {
    const CHARS = [...'abcXYZ019 ,!?\'\n', 'é', '日本', '😀', 'e\u0301', '  '];
    forAll('discordToMatrix plain chat', 2_000, (r) => ({ content: Array.from({ length: r.int(0, 60) }, () => r.pick(CHARS)).join('') }), ({ content }) => {
      const out = discordToMatrix(content);
      check(out.formattedBody === undefined, () => `formatted_body ${show(out.formattedBody)}`);
      check(out.body === content.replace(/\n+$/, ''), () => `body ${show(out.body)}`);
    });
  });
});

