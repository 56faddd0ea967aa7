/**
 * Discord → Matrix delivery around failures: what cannot be copied to the homeserver still reaches
 * Matrix (the text, the file as a link), and catching up goes on past a message that fails.
 * discord.js and core are stood in for by the few fields FromDiscord reads; the files come from
 * `data:` URLs, so nothing listens or connects.
 */
import { EventEmitter } from 'node:events';
import { Events, type Client } from 'discord.js';
import { silentLogger, type NetworkContext, type RemoteMessage } from '@trestle/core';
import { describe, expect, it } from 'vitest';
import type { DiscordConfig } from '../../../packages/discord/src/config.js';
import { FromDiscord } from '../../../packages/discord/src/fromDiscord.js';
import { attachmentPart, type AttachmentInfo } from '../../../packages/discord/src/media.js';

const FILE: AttachmentInfo = {
  name: 'notes.txt', url: 'data:text/plain,hello', size: 5, contentType: 'text/plain', width: null, height: null, description: null,
};
const refused = (): Promise<never> => Promise.reject(Object.assign(new Error('upload refused: too large'), { errcode: 'M_TOO_LARGE', status: 413 }));
const unreachable = (): Promise<never> => Promise.reject(new Error('cannot reach the homeserver: ECONNREFUSED'));

describe('attachmentPart: a file the homeserver does not take', () => {
  it.each([['refused (M_TOO_LARGE)', refused], ['unreachable', unreachable]])('%s: becomes a link to it, as a failed download does', async (_name, upload) => {
    const part = await attachmentPart(FILE, 1_000_000, { uploadMedia: upload }, silentLogger);
    expect(part).toEqual({ content: { msgtype: 'm.text', body: '📎 notes.txt (5 B): data:text/plain,hello' } });
  });

  // Discord's CDN links are signed and stop working after about a day: a link to the message stays
  it.each<[string, { guildId: string | null; channelId: string; id: string }, string]>([
    ['in a guild channel', { guildId: '1', channelId: '10', id: '3' }, 'https://discord.com/channels/1/10/3'],
    ['in a thread (its id is the channel\'s)', { guildId: '1', channelId: '55', id: '4' }, 'https://discord.com/channels/1/55/4'],
    ['in a DM', { guildId: null, channelId: '20', id: '5' }, 'https://discord.com/channels/@me/20/5'],
  ])('links the message it came in, with its name and size, not the file\'s expiring URL: %s', async (_name, from, link) => {
    const part = await attachmentPart(FILE, 1_000_000, { uploadMedia: unreachable }, silentLogger, from);
    expect(part).toEqual({ content: { msgtype: 'm.text', body: `📎 notes.txt (5 B): ${link}` } });
  });

  it('links the message of a file too big to copy, or that cannot be downloaded', async () => {
    const from = { guildId: '1', channelId: '10', id: '3' };
    const tooBig = await attachmentPart({ ...FILE, size: 2_000_000 }, 1_000_000, { uploadMedia: refused }, silentLogger, from);
    expect(tooBig.content['body']).toBe('📎 notes.txt (1.9 MiB): https://discord.com/channels/1/10/3');
    const gone = await attachmentPart({ ...FILE, url: 'not a URL' }, 1_000_000, { uploadMedia: refused }, silentLogger, from);
    expect(gone.content['body']).toBe('📎 notes.txt (5 B): https://discord.com/channels/1/10/3');
  });

  it('is uploaded when the homeserver takes it', async () => {
    const part = await attachmentPart(FILE, 1_000_000, { uploadMedia: async () => ({ mxc: 'mxc://hs/f', url: 'https://hs/f' }) }, silentLogger);
    expect(part.content).toMatchObject({ msgtype: 'm.file', url: 'mxc://hs/f', filename: 'notes.txt' });
  });
});

/** A Discord message as FromDiscord reads it. */
function message(id: string, file: boolean) {
  return {
    id, system: false, type: 0, webhookId: null, author: { id: '7', username: 'bob', globalName: null, avatarURL: () => null }, member: null,
    guild: { members: { cache: new Map() }, roles: { cache: new Map() } }, guildId: '1', channelId: '10', mentions: undefined, content: `msg ${id}`, poll: null, embeds: [],
    createdTimestamp: Date.now(), reference: null, messageSnapshots: new Map(), stickers: new Map(),
    attachments: new Map(file ? [['a', FILE]] : []),
  };
}

/**
 * A bridge of channel 10 that missed messages 2–5 (checkpoint at 1): a new gateway session makes it
 * catch up. `deliver` stands for core taking a message.
 */
async function catchUp(o: { upload: NetworkContext['uploadMedia']; deliver?: (m: RemoteMessage) => Promise<void>; file?: string }) {
  const kv = new Map([['last:10', '1']]);
  const delivered: RemoteMessage[] = [];
  const notices: string[] = [];
  const ctx = {
    log: silentLogger, kv: { get: (k: string) => kv.get(k), set: (k: string, v: string) => { kv.set(k, v); } },
    portals: { forChat: () => [{ roomId: '!r:x', kind: 'portal' }], all: () => [{ remoteChat: '10' }] },
    remote: {
      message: async (m: RemoteMessage) => { await o.deliver?.(m); delivered.push(m); },
      notice: async (n: { chat: string; text: string }) => { notices.push(n.text); },
    },
    uploadMedia: o.upload, ghostUserId: (u: string) => `@discord_${u}:x`, domain: 'x', bridged: () => false,
  };
  const msgs = ['2', '3', '4', '5'].map((id) => message(id, id === (o.file ?? '3')));
  const channel = {
    isTextBased: () => true, isDMBased: () => false, isThread: () => false,
    messages: { fetch: async ({ after }: { after: string }) => new Map(msgs.filter((m) => BigInt(m.id) > BigInt(after)).map((m) => [m.id, m])) },
  };
  const client = Object.assign(new EventEmitter(), { channels: { cache: new Map([['10', channel]]) }, user: { id: '999' } });
  const done = new Promise<void>((resolve) => {
    const from = new FromDiscord({
      ctx: ctx as unknown as NetworkContext,
      cfg: { maxAttachmentBytes: 1e7, maxMessageAgeSeconds: 900, rolePowers: {}, displayNameTemplate: '$DISPLAY', messageContentIntent: true, guilds: [] } as unknown as DiscordConfig,
      configKey: 'networks.discord', aliasPrefix: 'discord_', webhooks: { isOurs: () => false } as never, emojis: {} as never, stickers: {} as never,
      store: { addChatMember() {} } as never, deletedByUs: () => false, caughtUp: () => resolve(),
    });
    from.attach(client as unknown as Client);
  });
  client.emit(Events.ShardReady, 0, undefined);
  await done;
  return { delivered, notices, checkpoint: kv.get('last:10') };
}

describe('FromDiscord: catching up', () => {
  it('bridges the text of a message whose file the homeserver does not take, the file as a link, and goes on', async () => {
    const { delivered, checkpoint } = await catchUp({ upload: unreachable });
    expect(delivered.map((m) => m.id)).toEqual(['2', '3', '4', '5']);
    expect(delivered[1]!.parts.map((p) => p.content['body'])).toEqual(['msg 3', '📎 notes.txt (5 B): https://discord.com/channels/1/10/3'] /* the message, not the file's expiring link */);
    expect(checkpoint).toBe('5');
  });

  it('goes on past a message that cannot be bridged at all, and tells its rooms where to read it', async () => {
    const { delivered, notices, checkpoint } = await catchUp({
      upload: unreachable,
      deliver: async (m) => { if (m.id === '3') throw new Error('the database is locked'); },
    });
    expect(delivered.map((m) => m.id)).toEqual(['2', '4', '5']);
    expect(notices).toEqual(['⚠ A message from bob on Discord could not be bridged (the database is locked). Read it on Discord: https://discord.com/channels/1/10/3']);
    expect(checkpoint).toBe('5'); // given up, and told
  });

  it('caught-up messages go to Matrix with the times they were said, however old', async () => {
    const { delivered } = await catchUp({ upload: unreachable });
    expect(delivered.map((m) => m.backfill)).toEqual([true, true, true, true]);
  });
});
