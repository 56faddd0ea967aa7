/**
 * Matrix → Discord delivery (ToDiscord) against a stand-in for the channel's webhook that keeps the
 * messages it holds, and answers as Discord does (10008 Unknown Message) for one that is gone.
 * discord.js and core are stood in for by the few fields ToDiscord reads; nothing connects.
 */
import { DeliveryError, silentLogger, type MatrixEdit, type MatrixMessage, type MatrixRedaction, type NetworkContext } from '@trestle/core';
import type { Client, RawFile } from 'discord.js';
import { describe, expect, it } from 'vitest';
import type { DiscordConfig } from '../../../packages/discord/src/config.js';
import { reactionRef } from '../../../packages/discord/src/ids.js';
import { ToDiscord } from '../../../packages/discord/src/toDiscord.js';
import type { WebhookMessageBody } from '../../../packages/discord/src/webhooks.js';

const unknownMessage = (): Error => Object.assign(new Error('Unknown Message'), { code: 10008, status: 404 });
const discordError = (message: string, code: number, status: number): Error => Object.assign(new Error(message), { code, status });

/**
 * A bridge of channel 10 of guild 1, with what reached Discord. `refusedEmoji`: what Discord answers
 * 10014 Unknown Emoji for. `threads`: the threads Discord has in the channel (by id, which is their
 * starter message's), none in discord.js's cache, as after a restart; `fetchFails`: fetching a
 * channel fails (no answer from Discord, say). `power`: the sender's power level in the room;
 * `roles`, `members`: the guild's (members by name).
 */
function bridge(o: {
  refusedEmoji?: string[]; threads?: Record<string, { locked?: boolean }>; fetchFails?: boolean;
  power?: number; roles?: { id: string; name: string; mentionable: boolean }[]; members?: string[];
} = {}) {
  const messages = new Map<string, string>(); // Discord id → content
  const where = new Map<string, string>(); // Discord id → the thread or channel it went to
  const threads = new Map(Object.entries(o.threads ?? {}));
  const started: string[] = [];
  const calls: string[] = [];
  const reactions: string[] = [];
  /** What each message was sent or last edited with, by id: its body and its files' text. */
  const sentWith = new Map<string, { body: WebhookMessageBody; files: { name: string; text: string }[] }>();
  let next = 100;
  const webhooks = {
    async execute(channel: string, thread: string | undefined, body: WebhookMessageBody, files: RawFile[] = []) {
      const id = String(next++);
      sentWith.set(id, { body, files: files.map((f) => ({ name: f.name, text: Buffer.from(f.data as Buffer).toString('utf8') })) });
      messages.set(id, body.content ?? '');
      where.set(id, thread ?? channel);
      calls.push(`send ${id}`);
      return { id };
    },
    async edit(_channel: string, _thread: string | undefined, id: string, body: WebhookMessageBody & { content: string }) {
      calls.push(`edit ${id}`);
      if (!messages.has(id)) throw unknownMessage();
      messages.set(id, body.content);
      // (as Discord: the files stay unless `attachments` says which)
      const before = sentWith.get(id)!;
      sentWith.set(id, { body, files: body.attachments ? before.files.filter((_f, k) => body.attachments!.some((a) => a.id === k)) : before.files });
      return { id };
    },
    async delete(_channel: string, _thread: string | undefined, id: string) {
      calls.push(`delete ${id}`);
      if (!messages.delete(id)) throw unknownMessage();
    },
    isOurs: () => true,
  };
  const guild = {
    id: '1',
    roles: { cache: new Map((o.roles ?? []).map((r) => [r.id, r])) },
    members: { cache: new Map((o.members ?? []).map((name, k) => [String(k), { id: String(k), nickname: null, user: { globalName: null, username: name } }])) },
  };
  const channel = { guild, isDMBased: () => false, isTextBased: () => true, isThread: () => false };
  const client = {
    channels: {
      cache: new Map([['10', channel]]),
      fetch: async (id: string) => {
        if (o.fetchFails) throw new Error('fetch failed');
        const t = threads.get(id);
        if (!t) throw discordError('Unknown Channel', 10003, 404);
        return { id, locked: t.locked ?? false, isThread: () => true };
      },
    },
    user: { id: '999' },
    rest: {
      get: async (route: string) => {
        if (route === '/channels/10/messages/55') return { id: '55', content: 'the root message' };
        throw unknownMessage();
      },
      put: async (route: string) => {
        const emoji = decodeURIComponent(route.split('/reactions/')[1]!.split('/')[0]!);
        if (o.refusedEmoji?.includes(emoji)) throw Object.assign(new Error('Unknown Emoji'), { code: 10014, status: 400 });
        reactions.push(emoji);
      },
      delete: async () => undefined,
      post: async (route: string) => {
        const m = /^\/channels\/10\/messages\/(\d+)\/threads$/.exec(route);
        if (!m) return undefined;
        if (threads.has(m[1]!)) throw discordError('A thread has already been created for this message', 160004, 400);
        threads.set(m[1]!, {});
        started.push(m[1]!);
        return { id: m[1]! };
      },
    },
  };
  const kv = new Map<string, string>();
  const ctx = {
    log: silentLogger, mediaUrl: (m: string) => m, portals: { forRoom: () => [] }, matrix: { powerLevel: async () => o.power ?? 0 },
    remoteUserOf: () => undefined, domain: 'x',
    kv: { get: (k: string) => kv.get(k), set: (k: string, v: string) => { kv.set(k, v); }, delete: (k: string) => { kv.delete(k); } },
  };
  const to = new ToDiscord({
    ctx: ctx as unknown as NetworkContext,
    cfg: { everyoneMentionPower: 50, uploadLimitBytes: 1e7 } as unknown as DiscordConfig,
    aliasPrefix: 'discord_', store: { setReplyQuote() {}, replyQuote: () => undefined, addReaction() {} } as never,
    webhooks: webhooks as never, client: () => client as unknown as Client,
    emojis: { byMxc: (mxc: string) => (mxc === 'mxc://x/party' ? { id: '444', name: 'party', animated: false } : undefined) } as never,
    remoteUserOf: (mxid: string) => (mxid === '@discord_5:x' ? { kind: 'user', userId: '5' } : undefined),
  });
  const shown = (): string[] => [...messages.values()];
  return { to, messages, calls, reactions, shown, where, started, sentWith };
}

const portal = { roomId: '!r:x', remoteChat: '10', kind: 'portal' as const };
const sender = { userId: '@alice:x', displayName: 'Alice' };
const message = (body: string): MatrixMessage => ({ portal, eventId: '$1', sender, msgtype: 'm.text', body, timestamp: 0, raw: {} });
let edits = 0;
const edit = (remoteIds: string[], body: string): MatrixEdit =>
  ({ portal, eventId: `$e${++edits}`, sender, target: { eventId: '$1', remoteIds }, msgtype: 'm.text', body, timestamp: 0 });

/** Text of `n` paragraphs of 1,500 characters: one Discord message each. */
const paragraphs = (n: number, word = 'para'): string => Array.from({ length: n }, (_, i) => `${word}${i} `.repeat(250).trim()).join('\n');

describe('ToDiscord: replies', () => {
  it('quotes the author of the message answered as text, or as a mention for a Discord user', async () => {
    const { to, shown } = bridge();
    await to.message({ ...message('yes'), replyTo: { eventId: '$0', sender: '@_x_:a.org', body: 'hi' } });
    await to.message({ ...message('no'), replyTo: { eventId: '$0', sender: '@discord_5:x', body: 'hi' } });
    expect(shown()).toEqual(['> @\\_x\\_:a.org: hi\nyes', '> <@5>: hi\nno']);
  });
});

describe('ToDiscord: Matrix threads', () => {
  const inThread = (body: string): MatrixMessage => ({ ...message(body), threadRoot: { eventId: '$root', remoteId: '55' } });

  it('starts a Discord thread on the root message for the first reply, and sends the reply there', async () => {
    const { to, where, started } = bridge();
    const { remoteIds } = await to.message(inThread('first'));
    expect(started).toEqual(['55']);
    expect(remoteIds).toEqual(['55/100']);
    expect(where.get('100')).toBe('55');
  });

  it('sends a reply to a thread discord.js has not cached (archived, or after a restart) to that thread', async () => {
    const { to, where, started } = bridge({ threads: { 55: {} } });
    const { remoteIds } = await to.message(inThread('later'));
    expect(started).toEqual([]);
    expect(remoteIds).toEqual(['55/100']);
    expect(where.get('100')).toBe('55'); // the webhook's thread_id unarchives it
  });

  it('sends to the thread Discord says the root message already has when the thread cannot be fetched', async () => {
    const { to, where } = bridge({ threads: { 55: {} }, fetchFails: true });
    expect(await to.message(inThread('later'))).toEqual({ remoteIds: ['55/100'] });
    expect(where.get('100')).toBe('55');
  });

  it('sends a reply to a locked thread to the channel', async () => {
    const { to, where, started } = bridge({ threads: { 55: { locked: true } } });
    expect(await to.message(inThread('late'))).toEqual({ remoteIds: ['100'] });
    expect(started).toEqual([]);
    expect(where.get('100')).toBe('10');
  });
});

describe('ToDiscord: reactions', () => {
  const react = (key: string) => ({ portal, eventId: '$x', sender, key, target: { eventId: '$1', remoteIds: ['77'] } });

  it.each<[string, string, string[], string]>([
    ['VS16 is left out (Discord refuses many emoji with it)', '❤️', [], '❤'],
    ['an emoji without it is sent as is', '👍🏽', [], '👍🏽'],
    ['one Discord knows only with it is sent with it', '1️⃣', ['1⃣'], '1️⃣'],
    ['a custom emoji is sent by name and id', 'mxc://x/party', [], 'party:444'],
  ])('%s', async (_name, key, refusedEmoji, sent) => {
    const { to, reactions } = bridge({ refusedEmoji });
    expect(await to.reaction(react(key))).toEqual({ remoteIds: [reactionRef('77', sent)] });
    expect(reactions).toEqual([sent]);
  });

  it('leaves out, without failing, a reaction Discord does not know', async () => {
    const { to, reactions } = bridge({ refusedEmoji: ['🫠', '🫠\uFE0F'] });
    expect(await to.reaction(react('🫠\uFE0F'))).toEqual({});
    expect(reactions).toEqual([]);
  });
});

describe('ToDiscord: editing a message sent in parts', () => {
  it('edits a message shortened to one part and then made long again: the deleted parts are not edited, the text is all shown', async () => {
    const { to, calls, shown } = bridge();
    const { remoteIds } = await to.message(message(paragraphs(3)));
    expect(remoteIds).toEqual(['100', '101', '102']);
    await to.edit(edit(remoteIds!, 'short'));
    expect(shown()).toEqual(['short']);
    calls.length = 0;
    await to.edit(edit(remoteIds!, paragraphs(3, 'new')));
    expect(calls).toEqual(['edit 100', 'send 103', 'send 104']); // parts 101 and 102 are known gone
    expect(shown().join('\n')).toBe(paragraphs(3, 'new'));
    // and the parts it is now made of are edited and deleted with it
    calls.length = 0;
    await to.edit(edit(remoteIds!, paragraphs(2, 'again')));
    expect(calls).toEqual(['edit 100', 'edit 103', 'delete 104']);
    expect(shown().join('\n')).toBe(paragraphs(2, 'again'));
    await to.redaction({ portal, eventId: '$r', sender, target: { eventId: '$1', remoteIds: remoteIds! } } as MatrixRedaction);
    expect(shown()).toEqual([]);
  });

  it('sends the rest anew when a part was deleted on Discord, after the part before it', async () => {
    const { to, messages, calls, shown } = bridge();
    const { remoteIds } = await to.message(message(paragraphs(3)));
    messages.delete('101'); // a moderator deleted the second part
    calls.length = 0;
    await to.edit(edit(remoteIds!, paragraphs(3, 'new')));
    expect(calls).toEqual(['edit 100', 'edit 101', 'delete 102', 'send 103', 'send 104']);
    expect(shown().join('\n')).toBe(paragraphs(3, 'new'));
  });

  it('shows text grown past the parts there are in a new part, not cut', async () => {
    const { to, shown } = bridge();
    const { remoteIds } = await to.message(message('short'));
    await to.edit(edit(remoteIds!, paragraphs(2)));
    expect(shown().join('\n')).toBe(paragraphs(2));
  });

  it('refuses for good to edit a message whose first part is gone', async () => {
    const { to, messages } = bridge();
    const { remoteIds } = await to.message(message('short'));
    messages.clear();
    const err = await to.edit(edit(remoteIds!, 'new')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeliveryError);
    expect((err as DeliveryError).permanent).toBe(true);
  });
});

describe('ToDiscord: pings', () => {
  const roles = [{ id: '222', name: 'Mods', mentionable: true }];

  it.each<[string, number, string, string[]]>([
    ['a sender below everyoneMentionPower: the name as typed', 0, '@Mods help', []],
    ['a sender at everyoneMentionPower: a mention', 50, '<@&222> help', ['222']],
  ])('pings a role by `@Role` only from a sender who may ping everyone: %s', async (_name, power, content, pinged) => {
    const { to, shown, sentWith } = bridge({ power, roles });
    await to.message(message('@Mods help'));
    expect(shown()).toEqual([content]);
    expect((sentWith.get('100')!.body.allowed_mentions as { roles: string[] }).roles).toEqual(pinged);
  });

  it('pings no role from a quote, even from a sender who may', async () => {
    const { to, shown } = bridge({ power: 100, roles });
    await to.message({ ...message('> @Mods said\nok'), formattedBody: '<blockquote>@Mods said</blockquote>ok' });
    expect(shown()).toEqual(['> @Mods said\nok']);
  });
});

describe('ToDiscord: names', () => {
  it('never speaks under a name that only looks different from a member\'s', async () => {
    const { to, sentWith } = bridge({ members: ['Admin'] });
    for (const [k, displayName] of ['Admin\u200b', '\u200bAdmin', 'Admin\u2060', 'A\u00addmin', '\u0410dmin'].entries()) {
      await to.message({ ...message('hi'), eventId: `$n${k}`, sender: { userId: '@mallory:x', displayName } });
    }
    expect([...sentWith.values()].map((m) => m.body.username)).toEqual(['Admin (Matrix)', 'Admin (Matrix)', 'Admin (Matrix)', 'Admin (Matrix)', '\u0410dmin (Matrix)']);
  });
});

describe('ToDiscord: very long messages', () => {
  const long = 'word '.repeat(13_000).trim(); // 65 KB: 33 Discord messages

  it('sends text of up to three messages as messages, with no file', async () => {
    const { to, sentWith } = bridge();
    const { remoteIds } = await to.message(message(paragraphs(3)));
    expect(remoteIds).toHaveLength(3);
    expect([...sentWith.values()].flatMap((m) => m.files)).toEqual([]);
  });

  it('sends longer text as its start, then the whole text as message.txt, as Discord\'s client does', async () => {
    const { to, shown, sentWith } = bridge();
    const { remoteIds } = await to.message(message(long));
    expect(remoteIds).toEqual(['100', '101']);
    expect(shown()[0]!.endsWith('\n-# …the whole message is in message.txt')).toBe(true);
    expect(shown()[0]!.length).toBeLessThanOrEqual(2000);
    const file = sentWith.get('101')!;
    expect(file.files).toEqual([{ name: 'message.txt', text: long }]); // nothing lost
    expect(file.body).toMatchObject({ allowed_mentions: { parse: [] }, attachments: [{ id: 0, filename: 'message.txt' }] });
    expect(file.body.content).toBeUndefined();
  });

  it('sends the media file with the start of a long caption, and the whole caption after', async () => {
    const { to, sentWith } = bridge();
    const media = { ...message(long), media: { url: 'data:image/png,img', filename: 'cat.png', mimetype: 'image/png' } } as MatrixMessage;
    await to.message(media);
    expect([...sentWith.values()].map((m) => m.files.map((f) => f.name))).toEqual([['cat.png'], ['message.txt']]);
  });

  it('keeps the link to a file too big for Discord in the whole text, after a long caption', async () => {
    const { to, sentWith } = bridge();
    const media = { ...message(long), media: { url: 'mxc://x/big', filename: 'big.bin', size: 2e7 } } as MatrixMessage;
    await to.message(media);
    expect(sentWith.get('101')!.files).toEqual([{ name: 'message.txt', text: `${long}\n📎 big.bin (19.1 MiB), too big to upload to Discord: mxc://x/big` }]);
  });

  it('edits a message made too long into its start and the file, and back, leaving no stale file', async () => {
    const { to, calls, shown, sentWith } = bridge();
    const { remoteIds } = await to.message(message(paragraphs(2)));
    calls.length = 0;
    await to.edit(edit(remoteIds!, long));
    expect(calls).toEqual(['edit 100', 'delete 101', 'send 102']);
    expect(sentWith.get('102')!.files).toEqual([{ name: 'message.txt', text: long }]);
    calls.length = 0;
    await to.edit(edit(remoteIds!, paragraphs(2, 'new')));
    // the message that held the file now holds text, without the file
    expect(calls).toEqual(['edit 100', 'edit 102']);
    expect(shown().join('\n')).toBe(paragraphs(2, 'new'));
    expect(sentWith.get('102')!.files).toEqual([]);
  });
});
