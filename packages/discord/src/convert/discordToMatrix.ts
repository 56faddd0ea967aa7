/**
 * Discord → Matrix message text. Pure: the caller looks users, channels, roles and emojis up
 * beforehand (custom emojis need uploading) and passes them in a {@link DiscordToMatrixResolver}.
 *
 * `body` keeps Discord's markdown markers (what people type), with mentions, channels and custom
 * emojis as names; `formattedBody` is `org.matrix.custom.html`, produced only when the message has
 * formatting, a mention or a masked link, so plain chat stays plain events. All text is escaped:
 * the only markup in `formattedBody` is what this file writes.
 */
import { parseDiscordMarkdown, type MdNode } from './markdown.js';
import { escapeHtml, userPillHref, roomPillHref } from './mentions.js';
import { dropInvisibles, hasInvisibles } from './unicode.js';

export interface DiscordToMatrixResolver {
  /** A Discord user: the Matrix user to pill (their ghost) and the name to show; undefined = unknown. */
  user?(id: string): { userId?: string; name: string } | undefined;
  role?(id: string): { name: string; color?: number } | undefined;
  /** A channel: its name, and the Matrix room (id or alias) when it is bridged. */
  channel?(id: string): { name: string; room?: string } | undefined;
  /** The mxc:// URL of a custom emoji, if it has been uploaded. */
  emoji?(e: { id: string; name: string; animated: boolean }): string | undefined;
}

export interface MatrixText {
  body: string;
  formattedBody?: string;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number): string => String(n).padStart(2, '0');

/** A Discord `<t:unix:style>` as fixed UTC text (Matrix has no local-time element). */
export function formatTimestamp(unix: number, style = 'f'): string {
  const d = new Date(unix * 1000);
  if (Number.isNaN(d.getTime())) return String(unix);
  const date = `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()}`;
  const time = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
  switch (style) {
    case 't': return `${time} UTC`;
    case 'T': return `${time}:${pad(d.getUTCSeconds())} UTC`;
    case 'd': return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
    case 'D': return date;
    default: return `${date} ${time} UTC`;
  }
}

/** URLs written out in text (`https://…`, `ftp://…`): up to the next space. */
const URL_IN_TEXT = /[a-z][a-z\d+.-]*:\/\/\S*/giu;
/**
 * Host names written in text: labels of letters, digits and hyphens joined by dots (or the dots
 * URL parsers read as dots, `。．｡`), the last two or more characters starting with a letter; or
 * an IPv4 address. Not one in a path (after `/`), nor the end of a longer word.
 */
const HOST_IN_TEXT = /(?<![\/\p{L}\p{N}.。．｡-])(?:(?:[\p{L}\p{N}](?:[\p{L}\p{N}-]*[\p{L}\p{N}])?[.。．｡])+\p{L}[\p{L}\p{N}-]*[\p{L}\p{N}]|\d{1,3}(?:\.\d{1,3}){3})/gu;

/** The host a URL goes to, as compared: lower case, punycode, without `www.` or a final dot; undefined when it has none, or user info (`https://paypal.com@evil.example`). */
function hostOf(url: string): string | undefined {
  let u: URL;
  try { u = new URL(url); } catch { return undefined; }
  if (u.username || u.password) return undefined;
  return u.hostname.replace(/\.$/, '').replace(/^www\./, '') || undefined;
}

/**
 * Characters that read as a dot but are none, and that NFKC leaves as they are: middle dots
 * (Latin, Greek, Katakana, halfwidth Katakana, Canadian syllabics), Syriac and Vai full stops,
 * the hyphenation point, word separator dots, the Lisu tone letter `ꓸ`, Arabic full stop. (NFKC
 * already makes `․` U+2024 and `﹒` U+FE52 a dot.)
 */
const DOT_LOOKALIKES = /[\u00B7\u0387\u06D4\u0701\u0702\u1427\u2027\u2E31\u2E33\u30FB\uA4F8\uA60E\uFF65]/gu;

/**
 * A link's text as a host name in it reads: NFKC (full-width letters, `․`), invisible characters
 * dropped (`good\u200b.com`), look-alike dots made dots. Only for looking: the text shown is the
 * text sent.
 */
function linkTextAsRead(text: string): string {
  return dropInvisibles(text.normalize('NFKC')).replace(DOT_LOOKALIKES, '.');
}

/**
 * Whether a masked link's text names a site other than the one it goes to: it holds a URL or a
 * host name (`paypal.com`) whose host is not the link's, once read as a person reads it (see
 * {@link linkTextAsRead}). Strict: `example.org` for a link to `docs.example.org` counts as another
 * site (on shared hosts, such as `github.io`, it is), and so does a file name that reads as a host
 * name (`README.md`): those are shown with their URL, which costs little. For the same reason it
 * fails closed: text holding an invisible or reordering character (but for those of an emoji)
 * counts too, whatever it reads as: such text is rarely typed, and the next trick with one would
 * get past a list of tricks.
 */
function namesAnotherSite(raw: string, href: string): boolean {
  if (hasInvisibles(raw)) return true;
  const text = linkTextAsRead(raw);
  const urls = text.match(URL_IN_TEXT) ?? [];
  const named = [...urls.map(hostOf), ...(text.replace(URL_IN_TEXT, ' ').match(HOST_IN_TEXT) ?? []).map((h) => hostOf(`http://${h}`))];
  if (named.length === 0) return false;
  const target = hostOf(href);
  return named.some((h) => h === undefined || h !== target);
}

interface Out {
  html: string;
  body: string;
}

class Renderer {
  /** Set once something needs HTML to show (formatting, a mention pill, a masked link...). */
  rich = false;
  /** Inside a masked link's text: mentions are its text, not pills (a link cannot hold a link). */
  private inLink = 0;
  constructor(private readonly r: DiscordToMatrixResolver) {}

  nodes(nodes: MdNode[]): Out {
    const out: Out = { html: '', body: '' };
    for (const n of nodes) {
      const o = this.node(n);
      out.html += o.html;
      out.body += o.body;
    }
    return out;
  }

  private wrap(tag: string, marker: string, c: MdNode[], attrs = ''): Out {
    this.rich = true;
    const inner = this.nodes(c);
    return { html: `<${tag}${attrs}>${inner.html}</${tag}>`, body: `${marker}${inner.body}${marker}` };
  }

  private node(n: MdNode): Out {
    const r = this.r;
    switch (n.t) {
      case 'text': return { html: escapeHtml(n.v), body: n.v };
      case 'br': return { html: '<br>', body: '\n' };
      case 'bold': return this.wrap('strong', '**', n.c);
      case 'italic': return this.wrap('em', '*', n.c);
      case 'underline': return this.wrap('u', '__', n.c);
      case 'strike': return this.wrap('del', '~~', n.c);
      case 'spoiler': return this.wrap('span', '||', n.c, ' data-mx-spoiler');
      case 'subtext': {
        const inner = this.nodes(n.c);
        return { html: `${inner.html}<br>`, body: `-# ${inner.body}\n` };
      }
      case 'heading': {
        this.rich = true;
        const inner = this.nodes(n.c);
        return { html: `<h${n.level}>${inner.html}</h${n.level}>`, body: `${'#'.repeat(n.level)} ${inner.body}\n` };
      }
      case 'quote': {
        this.rich = true;
        const inner = this.nodes(n.c);
        const body = inner.body.replace(/\n$/, '').split('\n').map((l) => `> ${l}`).join('\n');
        return { html: `<blockquote>${inner.html.replace(/(<br>)+$/, '')}</blockquote>`, body: `${body}\n` };
      }
      case 'list': {
        this.rich = true;
        const items = n.items.map((c) => this.nodes(c));
        const tag = n.ordered ? 'ol' : 'ul';
        const start = n.ordered && n.start !== 1 ? ` start="${n.start}"` : '';
        return {
          html: `<${tag}${start}>${items.map((i) => `<li>${i.html}</li>`).join('')}</${tag}>`,
          body: items.map((i, k) => `${n.ordered ? `${n.start + k}.` : '-'} ${i.body}\n`).join(''),
        };
      }
      case 'code':
        this.rich = true;
        return { html: `<code>${escapeHtml(n.v)}</code>`, body: `\`${n.v}\`` };
      case 'codeblock': {
        this.rich = true;
        const cls = n.lang ? ` class="language-${escapeHtml(n.lang)}"` : '';
        return { html: `<pre><code${cls}>${escapeHtml(n.v)}\n</code></pre>`, body: `\`\`\`${n.lang ?? ''}\n${n.v}\n\`\`\`` };
      }
      case 'link': {
        this.inLink++;
        let inner: Out;
        try { inner = this.nodes(n.c); } finally { this.inLink--; }
        if (inner.body === n.href) return { html: `<a href="${escapeHtml(n.href)}">${escapeHtml(n.href)}</a>`, body: n.href };
        this.rich = true;
        if (namesAnotherSite(inner.body, n.href)) {
          // `[paypal.com](https://evil.example)`: Discord warns before opening such a link, Matrix
          // clients do not (nor show where it goes, on phones); the text is shown as text, then the link
          const href = escapeHtml(n.href);
          return { html: `${inner.html} (<a href="${href}">${href}</a>)`, body: `${inner.body} (${n.href})` };
        }
        return { html: `<a href="${escapeHtml(n.href)}">${inner.html}</a>`, body: `${inner.body} (${n.href})` };
      }
      case 'user': {
        const u = r.user?.(n.id);
        if (!u) return { html: escapeHtml(`@${n.id}`), body: `@${n.id}` };
        if (!u.userId) return { html: escapeHtml(`@${u.name}`), body: `@${u.name}` };
        if (this.inLink) return { html: escapeHtml(u.name), body: u.name };
        this.rich = true;
        return { html: `<a href="${escapeHtml(userPillHref(u.userId))}">${escapeHtml(u.name)}</a>`, body: u.name };
      }
      case 'role': {
        const role = r.role?.(n.id);
        const name = `@${role?.name ?? 'deleted-role'}`;
        if (!role?.color) return { html: escapeHtml(name), body: name };
        this.rich = true;
        const hex = `#${role.color.toString(16).padStart(6, '0')}`;
        return { html: `<font data-mx-color="${hex}">${escapeHtml(name)}</font>`, body: name };
      }
      case 'channel': {
        const c = r.channel?.(n.id);
        const name = `#${c?.name ?? 'unknown-channel'}`;
        if (!c?.room || this.inLink) return { html: escapeHtml(name), body: name };
        this.rich = true;
        return { html: `<a href="${escapeHtml(roomPillHref(c.room))}">${escapeHtml(name)}</a>`, body: name };
      }
      case 'emoji': {
        const text = `:${n.name}:`;
        const mxc = r.emoji?.({ id: n.id, name: n.name, animated: n.animated });
        if (!mxc) return { html: escapeHtml(text), body: text };
        this.rich = true;
        return {
          html: `<img data-mx-emoticon src="${escapeHtml(mxc)}" alt="${escapeHtml(text)}" title="${escapeHtml(text)}" height="32">`,
          body: text,
        };
      }
      case 'timestamp': {
        const text = formatTimestamp(n.unix, n.style);
        return { html: escapeHtml(text), body: text };
      }
      case 'everyone':
      case 'here':
        return { html: `@${n.t}`, body: `@${n.t}` };
    }
  }
}

/** Discord message content → Matrix `body` and, when needed, `formatted_body`. */
export function discordToMatrix(content: string, resolver: DiscordToMatrixResolver = {}): MatrixText {
  const r = new Renderer(resolver);
  let out: Out;
  try {
    out = r.nodes(parseDiscordMarkdown(content));
  } catch (err) {
    // markers nested thousands deep (7,500 `*` in a row; Discord's own limit is 4,000 characters)
    // exhaust the stack: the message still arrives, as the text it is
    if (err instanceof RangeError) return { body: content };
    throw err;
  }
  const body = out.body.replace(/\n+$/, '');
  if (!r.rich) return { body };
  return { body, formattedBody: out.html.replace(/(<br>)+$/, '') };
}

/** The Matrix event content of a text message. */
export function textContent(text: MatrixText, msgtype = 'm.text'): Record<string, unknown> {
  return {
    msgtype, body: text.body,
    ...(text.formattedBody !== undefined ? { format: 'org.matrix.custom.html', formatted_body: text.formattedBody } : {}),
  };
}

/** The Matrix msgtype for a file of this content type. */
export function msgtypeFor(contentType: string | undefined): 'm.image' | 'm.video' | 'm.audio' | 'm.file' {
  const t = (contentType ?? '').toLowerCase();
  if (t.startsWith('image/')) return 'm.image';
  if (t.startsWith('video/')) return 'm.video';
  if (t.startsWith('audio/')) return 'm.audio';
  return 'm.file';
}

/**
 * A Discord reaction's emoji as a Matrix reaction key. Discord names many emoji without VS16
 * (U+FE0F, "show as emoji": `❤`), Matrix clients send the fully-qualified form (`❤️`), and
 * reactions only count together when their keys are equal. Every emoji that shows as text by
 * default gets VS16 unless a selector or a skin tone follows it; keycaps (`1⃣`) get it before U+20E3.
 */
export function reactionKeyToMatrix(name: string): string {
  return name.replace(TEXT_DEFAULT_EMOJI, '$1\uFE0F');
}
const TEXT_DEFAULT_EMOJI = /([#*0-9](?=\u20E3)|(?![#*0-9])(?=\p{Emoji})(?!\p{Emoji_Presentation}).)(?![\uFE0E\uFE0F\p{Emoji_Modifier}])/gu;

/** What of a Discord poll its text needs (discord.js's `Poll`, or plain data in tests). */
export interface DiscordPoll {
  question: { text: string | null };
  answers: { values(): Iterable<{ text: string | null; emoji?: { id: string | null; name: string | null } | null }> };
  allowMultiselect: boolean;
}

/**
 * A Discord poll as Discord markdown, for Matrix: the question, then its answers numbered (with
 * their unicode emoji; a custom one as `:name:`). Votes stay on Discord.
 */
export function pollText(poll: DiscordPoll): string {
  const lines = [`**Poll:** ${poll.question.text ?? ''}${poll.allowMultiselect ? ' (choose any number)' : ''}`];
  let n = 0;
  for (const a of poll.answers.values()) {
    const emoji = a.emoji?.name ? (a.emoji.id ? `:${a.emoji.name}: ` : `${a.emoji.name} `) : '';
    lines.push(`${++n}. ${emoji}${a.text ?? ''}`.trimEnd());
  }
  return lines.join('\n');
}

/**
 * The system message Discord posts when a poll ends (its embed of type `poll_result`, whose fields
 * are named, not shown): `The poll "question" has ended. Top answer: X (n of m votes).`
 */
export function pollResultText(fields: readonly { name: string; value: string }[]): string {
  const f = (name: string): string | undefined => fields.find((x) => x.name === name)?.value;
  const question = f('poll_question_text');
  const top = f('victor_answer_text');
  const votes = f('victor_answer_votes'), total = f('total_votes');
  const ended = question ? `The poll "${question}" has ended.` : 'The poll has ended.';
  if (!top) return Number(total) > 0 ? `${ended} It was a tie.` : `${ended} Nobody voted.`;
  return `${ended} Top answer: ${top}${votes && total ? ` (${votes} of ${total} votes)` : ''}.`;
}

/** A simple rendering of an embed (bots, link posts) for a message that has no text of its own. */
export function embedText(e: { title?: string | null; url?: string | null; description?: string | null;
  author?: { name?: string | null } | null; fields?: { name: string; value: string }[] }): string {
  const lines: string[] = [];
  if (e.author?.name) lines.push(`**${e.author.name}**`);
  if (e.title) lines.push(e.url ? `**[${e.title}](${e.url})**` : `**${e.title}**`);
  if (e.description) lines.push(e.description);
  for (const f of e.fields ?? []) lines.push(`**${f.name}**`, f.value);
  return lines.join('\n');
}
