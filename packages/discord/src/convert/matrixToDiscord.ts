/**
 * Matrix → Discord message text. Pure: the caller resolves pills, rooms, emojis and roles through
 * a {@link MatrixToDiscordResolver} and sends the result.
 *
 * HTML (`org.matrix.custom.html`) becomes Discord markdown tag by tag; an unknown tag keeps its
 * text. Every piece of text is escaped, so what a Matrix user typed shows on Discord as typed:
 * nothing they write becomes markdown, a mention or a ping unless they formatted or pilled it.
 * `@everyone` / `@here` are defused unless allowed, and the returned mention lists are what the
 * caller puts in `allowed_mentions`.
 */
import { parseDOM } from 'htmlparser2';
import { defuseEveryone, escapeDiscordMarkdown, escapeLineStart, MARKER_CHARS, markupSpans, percentEncode, urlsIn, type MdSpan } from './markdown.js';
import { channelMention, customEmoji, parsePermalink, roleMention, userMention } from './mentions.js';
import { dropInvisibles, nameKey } from './unicode.js';

export interface DiscordRole { id: string; name: string; mentionable: boolean }
export interface DiscordEmoji { id: string; name: string; animated: boolean }

export interface MatrixToDiscordResolver {
  /** The Discord user a Matrix user id stands for (a ghost of this network), to mention. */
  user?(matrixUserId: string): string | undefined;
  /** The Discord channel a room (id or alias) is bridged to, to link with `<#id>`. */
  room?(roomIdOrAlias: string): string | undefined;
  /** The Discord emoji an mxc:// custom emoji stands for. */
  emoji?(mxc: string): DiscordEmoji | undefined;
  /** A public URL for an mxc:// URL (inline images). */
  mediaUrl?(mxc: string): string | undefined;
  /** The guild's roles, for `@Role` in text; only mentionable ones become mentions, and only with {@link allowRoles}. */
  roles?: readonly DiscordRole[];
  /** Send @everyone and @here as real mentions. */
  allowEveryone?: boolean;
  /**
   * Turn `@Role` in text into a mention of a mentionable role (the sender may ping it, as they may
   * ping everyone: a Matrix user is nobody the guild vetted). Otherwise the name stays text.
   */
  allowRoles?: boolean;
}

export interface DiscordText {
  content: string;
  /** Discord users the message mentions on purpose (pills). */
  users: string[];
  roles: string[];
  everyone: boolean;
}

interface HNode { type: string; data?: string; name?: string; attribs?: Record<string, string>; children?: HNode[] }

const COLLAPSIBLE = /[\t\n\f\r ]+/g;
const CONTROLS = /[\x00-\x08\x0B\x0C\x0E-\x1F\x7F]/g;
/** Half a surrogate pair, alone. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const URL_SCHEMES = /^(https?|mailto):/i;
/** `everyone` or `here` right after an `@` (sticky: tried at one position). */
const EVERYONE_AT = /(everyone|here)(?![A-Za-z0-9])/y;

/** Shared state of one conversion: resolver, mentions found. */
class Ctx {
  readonly users = new Set<string>();
  readonly roles = new Set<string>();
  everyone = false;
  /**
   * The paired markers (`**`, `*`, `__`, `~~`, `||`) the text being rendered is inside, outermost
   * first. A marker character in a URL there would close them early (a URL cannot be escaped), so
   * URLs there have those characters percent-encoded.
   */
  readonly open: string[] = [];
  /** Inside a link's text: a link there is its text (a link cannot hold a link). */
  inLink = 0;
  /** Inside a quote: what is quoted pings no one (quoting an announcement must not ping its role, or everyone, again). */
  inQuote = 0;
  /** The markers of formatting around the node being rendered that is moved down onto its children (see {@link distribute}). */
  readonly moved: string[] = [];
  private readonly roleList: DiscordRole[];
  constructor(readonly r: MatrixToDiscordResolver) {
    this.roleList = [...(r.roles ?? [])].filter((x) => x.name !== '@everyone').sort((a, b) => b.name.length - a.name.length);
  }

  /**
   * Escape text for Discord, turning `@Role` into role mentions and handling @everyone/@here (not
   * inside URLs, quotes or a link's text). `next`: the markdown that will follow it.
   */
  text(s: string, next = ''): string {
    let out = '';
    let last = 0;
    const urls = this.inLink > 0 ? [] : urlsIn(s); // a link's text holds no URL
    let u = 0; // both in text order: the first URL not yet behind `i`
    for (let i = s.indexOf('@'); i >= 0; i = s.indexOf('@', i + 1)) {
      while (u < urls.length && urls[u]!.end <= i) u++;
      if (i < last || (u < urls.length && urls[u]!.start < i)) continue;
      const token = this.atToken(s, i);
      if (!token) continue;
      out += escapeDiscordMarkdown(s.slice(last, i), '', this.open.length > 0, this.inLink > 0) + token.out;
      last = i + token.len;
    }
    return out + escapeDiscordMarkdown(s.slice(last), next, this.open.length > 0, this.inLink > 0);
  }

  private atToken(s: string, i: number): { out: string; len: number } | undefined {
    // (read in place, not from a copy of the rest: a message of 60,000 `@` took a second so)
    // Discord reads `@everyone` after anything, `a@everyone` too; only a letter or digit after it keeps it a word
    EVERYONE_AT.lastIndex = i + 1;
    const ev = EVERYONE_AT.exec(s);
    if (ev) {
      const glued = i > 0 && /[\w.]/.test(s[i - 1]!);
      // an e-mail address (me@everyone.example) stays whole: it is no mention, so it pings no one
      if (glued && s[EVERYONE_AT.lastIndex] === '.' && /[A-Za-z0-9]/.test(s[EVERYONE_AT.lastIndex + 1] ?? '')) return undefined;
      // only a mention standing alone pings, and only when allowed, and not quoted; any other is shown defused
      if (this.r.allowEveryone && !glued && this.inQuote === 0) { this.everyone = true; return { out: `@${ev[1]}`, len: ev[0].length + 1 }; }
      return { out: defuseEveryone(`@${ev[1]}`), len: ev[0].length + 1 };
    }
    if (i > 0 && /[\w.]/.test(s[i - 1]!)) return undefined; // an e-mail address, not a role
    // (a mention in a link's text would be the link's text; one not allowed stays the name typed)
    if (!this.r.allowRoles || this.inLink > 0 || this.inQuote > 0) return undefined;
    for (const role of this.roleList) {
      if (!role.mentionable || s.slice(i + 1, i + 1 + role.name.length).toLowerCase() !== role.name.toLowerCase()) continue;
      if (/\w/.test(s[i + 1 + role.name.length] ?? '')) continue;
      this.roles.add(role.id);
      return { out: roleMention(role.id), len: role.name.length + 1 };
    }
    return undefined;
  }
}

/**
 * Output of the HTML walk: text with `\n`, spaces collapsed as HTML does outside <pre>. The text
 * of neighbouring nodes (split by tags that add no markdown, like `<span>`) is escaped as one, so
 * the pieces cannot join into markdown or a token (`&lt;<span>@123&gt;</span>` is not `<@123>`).
 */
class Buf {
  private out = '';
  /** Text not yet escaped. */
  private pending = '';
  /** `inline`: the text goes between markers; a space at its start is kept (wrapInline moves it before them). */
  constructor(private readonly ctx: Ctx, private readonly inline = false) {}
  get s(): string { this.flush(); return this.out; }
  get atLineStart(): boolean { return this.s === '' || this.s.endsWith('\n'); }
  raw(t: string): void { this.flush(t); this.out += t; }
  /** Text as typed, spaces already collapsed: escaped with its neighbours. */
  text(t: string): void {
    const clean = t.replace(CONTROLS, '');
    this.pending += this.pending.endsWith(' ') ? clean.replace(/^ +/, '') : clean;
  }
  /** Flowing markdown (already escaped): a leading space at a line start is dropped. */
  flow(t: string): void {
    if (t === '') return;
    if (/^ +$/.test(t)) this.text(t); // spaces (around empty formatting) join the text
    else { this.flush(t); this.append(t); }
  }
  private append(t: string): void {
    const piece = (this.out === '' && !this.inline) || this.out.endsWith('\n') || this.out.endsWith(' ') ? t.replace(/^ +/, '') : t;
    // markup ending where the same markup starts reads as one run (`**a****b**`, two code spans
    // side by side): a zero-width space keeps them apart
    const last = this.out.at(-1);
    this.out += last !== undefined && '*_~|`'.includes(last) && piece.startsWith(last) ? `\u200b${piece}` : piece;
  }
  /** Escape the pending text; `next` is the markdown about to follow it. */
  private flush(next = ''): void {
    if (this.pending === '') return;
    const t = this.pending;
    this.pending = '';
    this.append(this.ctx.text(t, next));
  }
  newline(): void { this.flush('\n'); this.out = this.out.replace(/[ \t]+$/, '') + '\n'; }
  ensureLine(): void { if (!this.atLineStart) this.newline(); }
  blankLine(): void {
    if (this.s === '') return;
    this.ensureLine();
    if (!this.s.endsWith('\n\n')) this.out += '\n';
  }
}

/** The text of a node as is (for code), without the dropped controls; a CR is a line break, as Discord reads it. */
const textOf = (n: HNode): string => n.type === 'text' ? (n.data ?? '').replace(CONTROLS, '').replace(/\r\n?/g, '\n') : (n.children ?? []).map(textOf).join('');
const attr = (n: HNode, name: string): string | undefined => n.attribs?.[name];

/** An inline code span that survives backticks in its content. */
function inlineCode(s: string): string {
  const v = s.replace(/\n/g, ' ');
  if (v === '') return '';
  if (!v.includes('`')) return `\`${v}\``;
  return `\`\` ${v.replace(/``+/g, (m) => m.split('').join('\u200b'))} \`\``;
}

function wrapInline(marker: string, inner: string): string {
  const m = /^(\s*)([\s\S]*?)(\s*)$/.exec(inner)!;
  if (m[2] === '') return inner;
  // an escaped marker character just before the closing marker would pair with it (`~~a\~~~` is
  // struck `a\` and a `~`; `\**` reads as `**` to bold around it): a zero-width space between
  const body = /\\[*_~|]$/.test(m[2]!) ? `${m[2]}\u200b` : m[2];
  return `${m[1]}${marker}${body}${marker}${m[3]}`;
}

/** Tags whose content is not shown. */
const HIDDEN = new Set(['mx-reply', 'script', 'style', 'head', 'title']);
/** Blocks Discord reads only at the start of a line: formatting cannot be wrapped around them. */
const LINE_BLOCKS = new Set(['blockquote', 'ul', 'ol', 'pre', 'hr', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6']);
/**
 * What formatting cannot be wrapped around: a {@link LINE_BLOCKS} block, and code whose text holds
 * a marker character (`*_~|`) — Discord pairs the markers of formatting before it reads code, so
 * `**` + `` `a**` `` + `**` would close the bold inside the code and let its text out as markdown.
 */
const unwrappable = (n: HNode): boolean => n.type === 'tag'
  && (LINE_BLOCKS.has(n.name!) || (n.name === 'code' && /[*_~|]/.test(textOf(n))));
const holdsCache = new WeakMap<HNode, boolean>();
/** Whether a node is, or holds, something {@link unwrappable}. */
function holdsUnwrappable(n: HNode): boolean {
  let v = holdsCache.get(n);
  if (v === undefined) {
    v = unwrappable(n) || (n.type === 'tag' && n.name !== 'code' && !HIDDEN.has(n.name!) && (n.children ?? []).some(holdsUnwrappable));
    holdsCache.set(n, v);
  }
  return v;
}

/**
 * The children of formatting `f` with its formatting moved down onto them: runs of children that
 * can be wrapped are wrapped in copies of `f`, code and rules are left as they are, and any other
 * child (a quote, a list's items, a paragraph, a link, other formatting) gets the same done to its
 * own children. `<b>a<code>x*</code><blockquote>b</blockquote></b>` →
 * `<b>a</b><code>x*</code><blockquote><b>b</b></blockquote>`.
 */
function distribute(f: HNode, kids: HNode[]): HNode[] {
  const out: HNode[] = [];
  let run: HNode[] = [];
  const endRun = (): void => { if (run.length) out.push({ ...f, children: run }); run = []; };
  for (const k of kids) {
    if (!holdsUnwrappable(k)) { run.push(k); continue; }
    endRun();
    if (k.name === 'code' || k.name === 'pre' || k.name === 'hr') out.push(k);
    else if (k.name === 'ul' || k.name === 'ol') out.push({ ...k, children: (k.children ?? []).map((li) => ({ ...li, children: distribute(f, li.children ?? []) })) });
    else out.push({ ...k, children: distribute(f, k.children ?? []) });
  }
  endRun();
  return out;
}

/** `**`-style formatting: rendered as paired markers, or moved down onto its children (see {@link distribute}). */
function paired(marker: string, n: HNode, ctx: Ctx, buf: Buf, inPre: boolean): void {
  const kids = n.children ?? [];
  // Inside the same formatting it would add nothing, and its markers would close the outer ones.
  // Inside the same formatting moved down, what it holds is wrapped in that already (moving it
  // down again would copy all below it once more: minutes for tags nested thousands deep).
  if (ctx.open.includes(marker)) render(kids, ctx, buf, inPre);
  else if (!kids.some(holdsUnwrappable)) buf.flow(wrapInline(marker, marked(kids, ctx, marker)));
  else if (ctx.moved.includes(marker)) render(kids, ctx, buf, inPre);
  else {
    ctx.moved.push(marker);
    try { render(distribute(n, kids), ctx, buf, inPre); } finally { ctx.moved.pop(); }
  }
}

function render(nodes: HNode[], ctx: Ctx, buf: Buf, inPre = false): void {
  for (const n of nodes) renderNode(n, ctx, buf, inPre);
}

/** Render children into a fresh buffer (for wrapping, prefixing or indenting). */
function sub(nodes: HNode[], ctx: Ctx, inPre = false, inline = false): string {
  const b = new Buf(ctx, inline);
  render(nodes, ctx, b, inPre);
  return b.s;
}

/** Render children to go between paired markers `marker` (see {@link Ctx.open}). */
function marked(nodes: HNode[], ctx: Ctx, marker: string): string {
  ctx.open.push(marker);
  try {
    return sub(nodes, ctx, false, true);
  } finally {
    ctx.open.pop();
  }
}

function renderNode(n: HNode, ctx: Ctx, buf: Buf, inPre: boolean): void {
  if (n.type === 'text') {
    // (the HTML parser can cut a surrogate pair at a broken tag: its halves are dropped too)
    const data = (n.data ?? '').replace(CONTROLS, '').replace(LONE_SURROGATE, '');
    if (inPre) buf.raw(data);
    else buf.text(data.replace(COLLAPSIBLE, ' '));
    return;
  }
  if (n.type !== 'tag' || HIDDEN.has(n.name!)) return; // comments, CDATA, processing instructions
  const kids = n.children ?? [];
  switch (n.name) {
    case 'br':
      buf.newline();
      return;
    case 'p': case 'div': case 'section': case 'article': case 'header': case 'footer': case 'details': case 'summary': case 'caption':
      buf.blankLine();
      render(kids, ctx, buf, inPre);
      buf.blankLine();
      return;
    case 'tr':
      buf.ensureLine();
      render(kids, ctx, buf, inPre);
      buf.ensureLine();
      return;
    case 'td': case 'th':
      if (!buf.atLineStart) buf.raw(' | ');
      render(kids, ctx, buf, inPre);
      return;
    case 'strong': case 'b':
      paired('**', n, ctx, buf, inPre);
      return;
    case 'em': case 'i': case 'cite':
      paired('*', n, ctx, buf, inPre);
      return;
    case 'u': case 'ins':
      paired('__', n, ctx, buf, inPre);
      return;
    case 'del': case 's': case 'strike':
      paired('~~', n, ctx, buf, inPre);
      return;
    case 'span':
      if (n.attribs && 'data-mx-spoiler' in n.attribs) paired('||', n, ctx, buf, inPre);
      else render(kids, ctx, buf, inPre);
      return;
    case 'code':
      if (inPre) buf.raw(textOf(n));
      else if (ctx.inLink > 0) codeInLink(n, buf);
      else buf.flow(inlineCode(textOf(n)));
      return;
    case 'pre': {
      if (ctx.inLink > 0) { codeInLink(n, buf); return; }
      const code = kids.find((k) => k.type === 'tag' && k.name === 'code');
      const lang = /(?:^|\s)language-([A-Za-z0-9_+\-.#]+)/.exec(attr(code ?? n, 'class') ?? '')?.[1] ?? '';
      // (a line break right after `<pre>` is not part of the code, as HTML has it)
      let text = textOf(n).replace(/^\n/, '').replace(/\n$/, '');
      // no fence in the code: one pass leaves one in four backticks (`\u200b```)
      while (text.includes('```')) text = text.replace(/```/g, '`\u200b``');
      buf.ensureLine();
      buf.raw(`\`\`\`${lang}\n${text}\n\`\`\``);
      buf.newline();
      return;
    }
    case 'blockquote': {
      ctx.inQuote++;
      let inner: string;
      try { inner = sub(kids, ctx).replace(/\n+$/, '').replace(/^\n+/, ''); } finally { ctx.inQuote--; }
      buf.ensureLine();
      // (`>` alone would end the quote: Discord needs the space, on a blank line too)
      buf.raw(inner.split('\n').map((l) => `> ${l}`).join('\n'));
      buf.newline();
      return;
    }
    case 'h1': case 'h2': case 'h3': case 'h4': case 'h5': case 'h6': {
      const level = Number(n.name[1]);
      // h4–h6 are bold lines (bold as any <b> is: see paired)
      const inner = sub(level > 3 ? [{ type: 'tag', name: 'b', children: kids }] : kids, ctx).replace(/\s*\n\s*/g, ' ').trim();
      buf.ensureLine();
      if (inner) buf.raw(level <= 3 ? `${'#'.repeat(level)} ${inner}` : inner);
      buf.newline();
      return;
    }
    case 'ul': case 'ol': {
      const ordered = n.name === 'ol';
      let num = Number(attr(n, 'start') ?? 1) || 1;
      buf.ensureLine();
      for (const li of kids) {
        if (li.type !== 'tag' || li.name !== 'li') continue;
        const marker = ordered ? `${num++}. ` : '- ';
        const inner = sub(li.children ?? [], ctx).replace(/\n+$/, '').replace(/^\n+/, '');
        // an item is lines of text: a code block in it (and what follows) goes after it, unindented
        const lines = inner.split('\n');
        const fence = lines.findIndex((l) => l.startsWith('```'));
        const [first, ...rest] = fence < 0 ? lines : lines.slice(0, fence);
        if (first !== undefined && first !== '') buf.raw(marker + first + rest.map((l) => `\n  ${l}`).join(''));
        if (fence >= 0) { buf.ensureLine(); buf.raw(lines.slice(fence).join('\n')); }
        buf.newline();
      }
      return;
    }
    case 'hr':
      buf.ensureLine();
      buf.raw('───');
      buf.newline();
      return;
    case 'a':
      link(n, ctx, buf);
      return;
    case 'img':
      image(n, ctx, buf);
      return;
    default:
      render(kids, ctx, buf, inPre);
  }
}

/**
 * Code in a link's text, which is one line: inline code, or text if it holds a bracket or a
 * backslash (the link's text ends at the first `]`, escaped or in code).
 */
function codeInLink(n: HNode, buf: Buf): void {
  const t = textOf(n).replace(COLLAPSIBLE, ' ').trim();
  if (/[[\]\\]/.test(t)) buf.text(t);
  else buf.flow(inlineCode(t));
}

/**
 * A URL that Discord reads to its end, in `[text](url)` or alone: whitespace, which would end it
 * early, `()<>`, which would end the link, and control characters are percent-encoded; so are
 * marker characters inside formatting (see {@link Ctx.open}).
 */
const safeUrl = (url: string, ctx: Ctx): string => {
  const encoded = percentEncode(url, /[\s()<>\x00-\x1F\x7F]/g);
  return ctx.open.length > 0 ? percentEncode(encoded, MARKER_CHARS) : encoded;
};

function link(n: HNode, ctx: Ctx, buf: Buf): void {
  const href = (attr(n, 'href') ?? '').trim();
  const label = textOf(n).replace(COLLAPSIBLE, ' ').trim();
  const p = parsePermalink(href);
  if (p?.kind === 'user') {
    const id = ctx.r.user?.(p.userId);
    if (id) { ctx.users.add(id); buf.flow(userMention(id)); return; }
    const name = label || p.userId;
    buf.text(name.startsWith('@') ? name : `@${name}`);
    return;
  }
  if (p?.kind === 'room') {
    const channel = ctx.r.room?.(p.room);
    if (channel) buf.flow(channelMention(channel));
    else buf.text(label || p.room);
    return;
  }
  if (!URL_SCHEMES.test(href) || ctx.inLink > 0) { render(n.children ?? [], ctx, buf); return; }
  if (/^mailto:/i.test(href)) {
    // Discord links only http(s) URLs: an address is text
    const address = href.replace(/^mailto:/i, '');
    if (label && label !== href && label !== address) { render(n.children ?? [], ctx, buf); buf.text(` (${address})`); } else buf.text(address);
    return;
  }
  // Discord links only a URL with something after `//` (`http://` alone is text, and its text would run on)
  if (!/^https?:\/\/[^\s)>]/i.test(href)) { render(n.children ?? [], ctx, buf); return; }
  ctx.inLink++;
  let inner: string;
  // one line: Discord's link text cannot hold a line break (a block inside the link is flattened)
  try { inner = sub(n.children ?? [], ctx).replace(/\s*\n\s*/g, ' ').trim(); } finally { ctx.inLink--; }
  const bare = href.replace(/^https?:\/\//i, '');
  // a URL alone is text, escaped with its neighbours: what follows it cannot run into it
  if (!label || !inner || label === href || label === bare) buf.text(safeUrl(href, ctx)); // `[](url)` is no link
  // in a link's text a URL is not one, so an `@everyone` in it (left alone in text) would ping
  else buf.flow(`[${defuseEveryone(inner)}](${safeUrl(href, ctx)})`);
}

function image(n: HNode, ctx: Ctx, buf: Buf): void {
  const src = attr(n, 'src') ?? '';
  const alt = (attr(n, 'alt') ?? attr(n, 'title') ?? '').replace(COLLAPSIBLE, ' ');
  if (n.attribs && 'data-mx-emoticon' in n.attribs) {
    const e = ctx.r.emoji?.(src);
    if (e) { buf.flow(customEmoji(e)); return; }
    const name = alt.replace(/^:|:$/g, '');
    buf.text(name ? `:${name}:` : '');
    return;
  }
  // the media link of an mxc:// URL may be the mxc:// URL itself: only http(s) URLs are links,
  // and a link's text cannot hold one
  const url = ctx.inLink > 0 ? undefined : src.startsWith('mxc://') ? ctx.r.mediaUrl?.(src) : src;
  // (as for links: Discord links only a URL with something after `//`)
  if (!url || !/^https?:\/\/[^\s)>]/i.test(url)) { buf.text(alt); return; }
  const shown = alt.replace(CONTROLS, '').trim(); // `[](url)` is no link
  ctx.inLink++; // the alt text is the link's text
  let text: string;
  try { text = defuseEveryone(ctx.text(shown || 'image')); } finally { ctx.inLink--; }
  buf.flow(`[${text}](${safeUrl(url, ctx)})`);
}

/** Tidy a rendering: no runs of blank lines, no blank start or end. Code blocks are left alone. */
function tidy(s: string): string {
  return s.split(/(```[\s\S]*?```)/).map((part, i) => (i % 2 ? part : part.replace(/\n{3,}/g, '\n\n'))).join('').trim();
}

/**
 * A Matrix message's text (body, and HTML if any) as Discord markdown, with the mentions it makes.
 * `emote`: the text of a /me (`m.emote`), shown in italics as Discord shows its own /me.
 */
export function matrixToDiscord(msg: { body: string; formattedBody?: string }, resolver: MatrixToDiscordResolver = {},
  opts: { emote?: boolean } = {}): DiscordText {
  let ctx = new Ctx(resolver);
  let content = typeof msg.formattedBody === 'string' && msg.formattedBody.trim() !== '' ? fromHtml(msg.formattedBody, ctx, opts.emote === true) : undefined;
  if (content === undefined) {
    ctx = new Ctx(resolver); // (nothing found in HTML given up on counts)
    const body = typeof msg.body === 'string' ? msg.body : '';
    const lines = body.replace(CONTROLS, '').split(/\r\n|\n|\r/);
    if (opts.emote) ctx.open.push('*'); // in italics, as the HTML of an emote is (see fromHtml)
    const text = lines.map((line) => {
      // a line quoted in plain text (`> what she said`) is a quote too, though shown escaped
      const quoted = /^\s*>/.test(line);
      if (quoted) ctx.inQuote++;
      try { return ctx.text(line); } finally { if (quoted) ctx.inQuote--; }
    }).join('\n').trim();
    content = opts.emote ? wrapInline('*', text) : text;
  }
  return { content, users: [...ctx.users], roles: [...ctx.roles], everyone: ctx.everyone };
}

/**
 * HTML as Discord markdown; undefined if tags nested thousands deep exhaust the stack (the body
 * goes instead). `emote`: the text of a /me, in italics as Discord shows its own: rendered as if
 * inside `<em>`, so URLs in it are kept from closing the italics and blocks and code in it are
 * handled as in any other formatting (see paired).
 */
function fromHtml(html: string, ctx: Ctx, emote: boolean): string | undefined {
  try {
    const nodes = parseDOM(html, { decodeEntities: true }) as unknown as HNode[];
    return tidy(sub(emote ? [{ type: 'tag', name: 'em', children: nodes }] : nodes, ctx));
  } catch (err) {
    if (err instanceof RangeError) return undefined;
    throw err;
  }
}

// ------------------------------------------------------------------ names and splitting

/**
 * The webhook username a Matrix user speaks under on Discord. Their display name if it is 2–32
 * characters, else their Matrix id; ` (irc)` etc. for a user relayed from another network; never
 * a name Discord refuses (containing "discord" or "clyde"), and never a name that looks like that
 * of a member of the guild (`memberNames`), so no one is impersonated. At most 80 characters
 * (Discord's limit).
 *
 * Names are compared as they look ({@link nameKey}), and sent in NFKC without invisible characters
 * (but for those of an emoji): `Admin\u200b`, `A\u00addmin` and `Аdmin` (Cyrillic А) are all the
 * member Admin's name, and what is sent shows what was compared.
 */
export function webhookUsername(sender: { userId: string; displayName: string; ghostOf?: { network: string } },
  memberNames: Iterable<string> = []): string {
  let name = dropInvisibles(sender.displayName.normalize('NFKC'), true).replace(/[\x00-\x1F\x7F]/g, '').replace(/\s+/g, ' ').trim();
  if ([...name].length < 2 || [...name].length > 32) name = sender.userId;
  if (sender.ghostOf) name = `${name} (${sender.ghostOf.network})`;
  // Discord refuses these words anywhere in a name: break them with a middle dot (Disc·ord, Cl·yde)
  name = name.replace(/discord/gi, (w) => `${w.slice(0, 4)}\u00b7${w.slice(4)}`).replace(/clyde/gi, (w) => `${w.slice(0, 2)}\u00b7${w.slice(2)}`);
  const key = nameKey(name);
  for (const member of memberNames) {
    if (nameKey(member) === key) { name = `${name} (Matrix)`; break; }
  }
  return [...name].slice(0, 80).join('');
}

/**
 * Split content into messages of at most `max` characters (Discord: 2000), at a line break if
 * possible, else a space, and not inside a link, mention or emoji that fits in one message. Each
 * part reads as its stretch of the whole did: formatting, spoilers and code (inline or a block)
 * open at a cut are closed at the end of the part and reopened at the start of the next (a spoiler
 * cut in two would otherwise show its second half in clear, and the rest of a code span would be
 * read as markdown); a quote goes on quoted; and a part that starts mid-line never starts with
 * what Discord would read there as a heading, quote or list (it is escaped). What is added counts
 * towards `max`.
 */
export function splitMessage(content: string, max = 2000): string[] {
  const out: string[] = [];
  let spans: MdSpan[] | undefined; // (read only for a message that needs cutting)
  let pos = 0;
  /** What the part starting at `pos` starts with: markup reopened, or an escaped line start. */
  let lead = '';
  for (;;) {
    if (lead.length + content.length - pos <= max) { out.push(lead + content.slice(pos)); break; }
    if (pos >= content.length) { out.push(lead); break; } // (only a `max` too small for the markup reopened: never loop)
    // (what ends before this part has no say in it or after: left out, so each part looks at its own stretch)
    spans = (spans ?? markupSpans(content)).filter((s) => s.end > pos);
    let room = max - lead.length;
    let cut: number;
    let open: OpenMarkup;
    let part: string;
    for (;;) {
      cut = settleCut(content, spans, pos, pickCut(content, pos, room), room);
      open = openAt(spans, cut, max);
      part = lead + closePart(content.slice(pos, cut), open);
      if (part.length <= max || room <= 1) break;
      room -= part.length - max; // what closes the part did not fit: cut earlier
    }
    out.push(part);
    [pos, lead] = resume(content, cut, open, max);
  }
  return out.filter((c) => c.trim() !== '');
}

/** The most Discord messages the text of one Matrix message is sent as (see {@link splitCapped}). */
export const MAX_PARTS = 3;
/** The file the whole text of a message too long for {@link MAX_PARTS} messages goes in. */
export const LONG_TEXT_FILE = 'message.txt';
/** The line that ends the part shown of a message sent as a file (small text, as Discord shows `-# `). */
const IN_FILE_NOTE = `\n-# …the whole message is in ${LONG_TEXT_FILE}`;

/**
 * Content as at most `maxParts` Discord messages of at most `max` characters. Past that (a 65 KB
 * Matrix message would be 33 messages, flooding the channel and the rate limit) it is one message:
 * its first part and a line saying the rest is in {@link LONG_TEXT_FILE}, and `inFile` is set: the
 * caller sends the whole text in that file, as Discord's own client sends a long message, so
 * nothing is lost.
 */
export function splitCapped(content: string, maxParts = MAX_PARTS, max = 2000): { parts: string[]; inFile: boolean } {
  const parts = splitMessage(content, max);
  if (parts.length <= maxParts) return { parts, inFile: false };
  const first = splitMessage(content, max - IN_FILE_NOTE.length)[0] ?? '';
  return { parts: [`${first}${IN_FILE_NOTE}`], inFile: true };
}

/** Where to cut `content` for a part from `pos` of at most `room` characters: a line break, a space in the second half, or anywhere. */
function pickCut(content: string, pos: number, room: number): number {
  const limit = pos + Math.max(1, room);
  let cut = content.lastIndexOf('\n', limit);
  if (cut < pos + room / 2) cut = content.lastIndexOf(' ', limit);
  if (cut < pos + room / 2) cut = limit;
  return Math.min(cut, content.length);
}

/** `cut`, or before it, so as not to split a surrogate pair nor a backslash from what it escapes. */
function unsplit(content: string, pos: number, cut: number): number {
  let c = cut;
  for (;;) {
    if (c <= pos + 1) return c;
    if (/[\ud800-\udbff]/.test(content[c - 1]!)) { c--; continue; }
    let slashes = 0;
    while (c - 1 - slashes >= pos && content[c - 1 - slashes] === '\\') slashes++;
    if (slashes % 2 === 0) return c;
    c--;
  }
}

/**
 * Move a cut out of what must not be cut there: an atom (link, mention...) goes whole to the next
 * part if it fits in one; a cut in the markers of formatting or code (or right after its opening,
 * or right before its closing, which would leave one part empty markup) moves to before it or into
 * its text. The result is in `pos + 1 … pos + room`.
 */
function settleCut(content: string, spans: readonly MdSpan[], pos: number, first: number, room: number): number {
  let cut = first;
  for (let round = 0; round < 8; round++) {
    const before = cut;
    cut = unsplit(content, pos, cut);
    for (const s of spans) {
      if (s.start >= cut) break; // (sorted by start)
      if (s.end <= cut || s.kind === 'quote') continue;
      if (s.kind === 'atom') {
        if (s.start > pos && s.end - s.start <= room) cut = s.start;
      } else if (cut <= s.from) {
        if (s.start > pos) cut = s.start;
      } else if (cut >= s.to) {
        if (s.end <= pos + room) cut = s.end; // its closing fits: it ends in this part
        else {
          const inside = Math.max(content.lastIndexOf('\n', s.to - 1), content.lastIndexOf(' ', s.to - 1));
          const lo = Math.max(pos, s.from);
          cut = inside > lo ? inside : s.to - 1 > lo ? s.to - 1 : s.start > pos ? s.start : cut;
        }
      }
    }
    if (cut === before) break;
  }
  if (cut > pos && cut <= pos + Math.max(1, room)) return cut;
  return Math.max(pos + 1, unsplit(content, pos, Math.min(pos + Math.max(1, room), content.length)));
}

/** The markup open at a cut: a quote, then what closes the part and reopens in the next (outermost first). */
interface OpenMarkup {
  quote?: '> ' | '>>> ';
  /** A code block: its language (`undefined` when not in one). */
  fenceLang?: string;
  /** Formatting and inline code, outermost first. */
  inline: { open: string; close: string }[];
}

function openAt(spans: readonly MdSpan[], cut: number, max: number): OpenMarkup {
  const open: OpenMarkup = { inline: [] };
  for (const s of spans) {
    if (s.start >= cut) break;
    if (s.end <= cut) continue;
    if (s.kind === 'quote') open.quote = s.prefix;
    else if (s.kind === 'codeblock') open.fenceLang = s.lang;
    // (`` `` a`b `` ``: a code span of more than one backtick is written with spaces inside, for backticks at its ends)
    else if (s.kind === 'code') open.inline.push(s.marker.length > 1 ? { open: `${s.marker} `, close: ` ${s.marker}` } : { open: s.marker, close: s.marker });
    else if (s.kind === 'paired') open.inline.push({ open: s.marker, close: s.marker });
  }
  // Markup reopened takes room from each part: past a quarter of it (a tiny `max`, a long language
  // name) the language, then the formatting, is left out rather than the text.
  const cost = (): number => (open.fenceLang !== undefined ? open.fenceLang.length + 8 : 0) + open.inline.reduce((n, m) => n + m.open.length + m.close.length, 0);
  if (cost() > max / 4 && open.fenceLang) open.fenceLang = '';
  if (cost() > max / 4) open.inline = [];
  return open;
}

/** A part's text with what is open at its end closed. */
function closePart(chunk: string, open: OpenMarkup): string {
  if (open.fenceLang !== undefined) return `${chunk}\n${open.quote === '> ' ? '> ' : ''}\`\`\``; // (code keeps its spaces)
  const text = chunk.replace(/\s+$/, '');
  if (open.inline.length === 0) return text;
  // an escaped marker character right before a closing marker would pair with it (see wrapInline)
  const sep = /\\[*_~|]$/.test(text) ? '\u200b' : '';
  return text + sep + open.inline.map((m) => m.close).reverse().join('');
}

/** Where the next part's text starts after a cut, and what the part starts with. */
function resume(content: string, cut: number, open: OpenMarkup, max: number): [number, string] {
  let p = cut;
  if (open.fenceLang !== undefined) {
    if (content[p] === '\n' || content[p] === ' ') p++;
  } else if (open.inline.length > 0) {
    while (p < content.length && /\s/.test(content[p]!)) p++; // (the ends of formatted text are not its spaces)
  } else if (content[p] === '\n') {
    p++;
  } else {
    while (content[p] === ' ' || content[p] === '\t') p++;
  }
  const lineStart = p === 0 || content[p - 1] === '\n';
  let lead = '';
  if (open.quote === '>>> ') lead = '>>> ';
  else if (open.quote === '> ') {
    lead = '> ';
    if (lineStart && content.startsWith('> ', p)) p += 2; // (the line's own)
  }
  if (open.fenceLang !== undefined) return [p, `${lead}\`\`\`${open.fenceLang}\n${open.quote === '> ' ? '> ' : ''}`];
  if (open.inline.length > 0) return [p, lead + open.inline.map((m) => m.open).join('')];
  if (!lineStart) {
    // mid-line text is no block, but at the start of a message it would be (`# `, `> `, `- `, `1. `...)
    const head = content.slice(p, p + 12);
    const escaped = escapeLineStart(head);
    if (escaped !== head && lead.length + escaped.length <= max / 4) return [p + head.length, lead + escaped];
  }
  return [p, lead];
}

/**
 * The line that stands for a Matrix reply on Discord (webhooks cannot make real replies). The
 * author of the message answered is `mention` (a Discord user id: a mention, which pings no one as
 * the caller sends no allowed mention for it) or else `author`, a name shown as typed, as the
 * snippet is: a Matrix id (`@_x_:a.org`) or a webhook's name is text, not markdown or a ping.
 */
export function replyQuote(r: { author: string; mention?: string; snippet?: string; jumpUrl?: string }): string {
  const snippet = (r.snippet ?? '').replace(/\s+/g, ' ').trim();
  const short = [...snippet].length > 80 ? `${[...snippet].slice(0, 79).join('')}…` : snippet;
  const jump = r.jumpUrl ? ` [↪](<${r.jumpUrl}>)` : '';
  const rest = `${short ? `: ${escapeDiscordMarkdown(defuseEveryone(short))}` : ''}${jump}`;
  const author = r.mention !== undefined ? userMention(r.mention) : escapeDiscordMarkdown(defuseEveryone(r.author.replace(/\s+/g, ' ').trim()), rest || '\n');
  return `> ${author}${rest}\n`;
}
