import { describe, expect, it } from 'vitest';
import {
  aliasLocalpart, channelChat, ghostLocalpart, messageRef, parseAliasLocalpart, parseChat, parseLinkTarget, parseMessageRef,
  parseReactionRef, parseUser, reactionRef, threadChat, webhookUser,
} from '../../../packages/discord/src/ids.js';
import { classifyLoginError, DiscordLoginError } from '../../../packages/discord/src/client.js';
import { discordConfigSchema } from '../../../packages/discord/src/config.js';
import { fillTemplate, isRealEdit, powerOfRoles, tooOld } from '../../../packages/discord/src/fromDiscord.js';
import { allowedMentions, customEmojisIn, mentionedUserIds, parsePermalink } from '../../../packages/discord/src/convert/index.js';

const C = '1000000000000000001';
const T = '1000000000000000002';
const M = '1000000000000000003';

describe('Discord ids', () => {
  it('builds and parses chats: a channel, or a thread linked on its own', () => {
    expect(parseChat(channelChat(C))).toEqual({ channelId: C });
    expect(parseChat(threadChat(C, T))).toEqual({ channelId: C, threadId: T });
    for (const bad of ['', 'abc', `${C}/x`, `${C}/${T}/${M}`, '#general']) expect(parseChat(bad)).toBeUndefined();
  });

  it('names a message from the point of view of its chat', () => {
    // a message in the channel itself
    expect(messageRef(C, C, M)).toBe(M);
    expect(parseMessageRef(C, M)).toEqual({ channelId: C, parentId: C, messageId: M });
    // a message in a thread of the channel, shown as a Matrix thread
    expect(messageRef(C, T, M)).toBe(`${T}/${M}`);
    expect(parseMessageRef(C, `${T}/${M}`)).toEqual({ channelId: T, parentId: C, threadId: T, messageId: M });
    // a message in a thread linked on its own
    expect(messageRef(threadChat(C, T), T, M)).toBe(M);
    expect(parseMessageRef(threadChat(C, T), M)).toEqual({ channelId: T, parentId: C, threadId: T, messageId: M });
    expect(parseMessageRef(C, 'local-1')).toBeUndefined();
    expect(parseMessageRef('nope', M)).toBeUndefined();
  });

  it('names users and webhook authors, and their ghosts', () => {
    expect(parseUser('123456789012345678')).toEqual({ kind: 'user', userId: '123456789012345678' });
    expect(parseUser(webhookUser('42', 'GitHub: CI'))).toEqual({ kind: 'webhook', webhookId: '42', name: 'GitHub: CI' });
    expect(parseUser('someone')).toBeUndefined();
    expect(ghostLocalpart('123456789012345678')).toBe('123456789012345678');
    expect(ghostLocalpart(webhookUser('42', 'GitHub'))).toBe('webhook_42_GitHub');
  });

  it('builds and parses portal aliases', () => {
    expect(aliasLocalpart('discord_', '11', '22')).toBe('discord_11_22');
    expect(parseAliasLocalpart('discord_11_22', 'discord_')).toEqual({ guildId: '11', channelId: '22' });
    for (const bad of ['discord_11', 'discord_11_x', 'irc_11_22', 'discord__22', 'discord_11_22_33']) expect(parseAliasLocalpart(bad, 'discord_')).toBeUndefined();
  });

  it('reads what the link command accepts', () => {
    expect(parseLinkTarget('11/22')).toEqual({ guildId: '11', channelId: '22' });
    expect(parseLinkTarget(' 11 22 ')).toEqual({ guildId: '11', channelId: '22' });
    for (const bad of ['22', '11/22/33', 'guild/chan', '']) expect(parseLinkTarget(bad)).toBeUndefined();
  });

  it('round-trips the ids of reactions made for Matrix users', () => {
    expect(parseReactionRef(reactionRef(`${T}/${M}`, '👍🏽'))).toEqual({ message: `${T}/${M}`, emoji: '👍🏽' });
    expect(parseReactionRef(reactionRef(M, 'party:123'))).toEqual({ message: M, emoji: 'party:123' });
    expect(parseReactionRef(M)).toBeUndefined();
  });
});

describe('Discord event helpers', () => {
  it('fills the display name template', () => {
    expect(fillTemplate('$DISPLAY', { display: 'Bobby', username: 'bob', id: '1' })).toBe('Bobby');
    expect(fillTemplate('$DISPLAY ($USERNAME, $ID) [discord]', { display: 'Bobby', username: 'bob', id: '1' })).toBe('Bobby (bob, 1) [discord]');
  });

  it('skips messages older than the limit (0 = no limit)', () => {
    expect(tooOld(1_000, 1_000 + 900_000, 900)).toBe(false);
    expect(tooOld(1_000, 1_001 + 900_000, 900)).toBe(true);
    expect(tooOld(0, 10 ** 12, 0)).toBe(false);
  });

  it('ignores updates that only add embeds or pins', () => {
    expect(isRealEdit({ content: 'a', partial: false }, { content: 'a', editedTimestamp: null })).toBe(false); // link preview added
    expect(isRealEdit({ content: 'a', partial: false }, { content: 'a', editedTimestamp: 5 })).toBe(false); // embeds changed, text not
    expect(isRealEdit({ content: 'a', partial: false }, { content: 'b', editedTimestamp: 5 })).toBe(true);
    expect(isRealEdit({ content: null, partial: true }, { content: 'b', editedTimestamp: 5 })).toBe(true); // not cached: trust the timestamp
    expect(isRealEdit({ content: null, partial: true }, { content: 'b', editedTimestamp: null })).toBe(false);
  });

  it('maps roles to the highest power level, by id or name', () => {
    const powers = { mods: 50, '900': 75, admins: 100 };
    expect(powerOfRoles([{ id: '1', name: 'mods' }], powers)).toBe(50);
    expect(powerOfRoles([{ id: '1', name: 'mods' }, { id: '900', name: 'ops' }], powers)).toBe(75);
    expect(powerOfRoles([{ id: '2', name: 'members' }], powers)).toBe(0);
    expect(powerOfRoles([], powers)).toBe(0);
  });

  it('sorts login failures into the ones retrying cannot fix', () => {
    const token = classifyLoginError(Object.assign(new Error('An invalid token was provided.'), { code: 'TokenInvalid' }), 'networks.discord');
    expect(token).toBeInstanceOf(DiscordLoginError);
    expect(token.message).toMatch(/networks\.discord\.token/);
    const intents = classifyLoginError(new Error('Used disallowed intents'), 'networks.discord');
    expect(intents).toBeInstanceOf(DiscordLoginError);
    expect(intents.message).toMatch(/4014.*Message Content Intent.*networks\.discord\.messageContentIntent: false/);
    const down = classifyLoginError(new Error('connect ECONNREFUSED 127.0.0.1:1'), 'networks.discord');
    expect(down).not.toBeInstanceOf(DiscordLoginError);
  });
});

describe('mention helpers', () => {
  it('parses Matrix permalinks', () => {
    expect(parsePermalink('https://matrix.to/#/@alice:example.org')).toEqual({ kind: 'user', userId: '@alice:example.org' });
    expect(parsePermalink('https://matrix.to/#/%40alice%3Aexample.org')).toEqual({ kind: 'user', userId: '@alice:example.org' });
    expect(parsePermalink('https://matrix.to/#/#room:example.org?via=example.org')).toEqual({ kind: 'room', room: '#room:example.org' });
    expect(parsePermalink('https://matrix.to/#/!r:example.org/$ev')).toEqual({ kind: 'event', room: '!r:example.org', eventId: '$ev' });
    expect(parsePermalink('matrix:u/alice:example.org')).toEqual({ kind: 'user', userId: '@alice:example.org' });
    expect(parsePermalink('matrix:r/room:example.org/e/ev')).toEqual({ kind: 'event', room: '#room:example.org', eventId: '$ev' });
    expect(parsePermalink('https://example.org/#/@alice:example.org')).toBeUndefined();
  });

  it('finds mentioned users and custom emojis in content', () => {
    expect(mentionedUserIds('<@1> <@!2> <@1> <@&3>')).toEqual(['1', '2']);
    expect(customEmojisIn('<:a:1> <a:b:2> <:a:1>')).toEqual([{ id: '1', name: 'a', animated: false }, { id: '2', name: 'b', animated: true }]);
  });

  it('caps allowed_mentions lists at Discord\'s 100', () => {
    const many = Array.from({ length: 150 }, (_, i) => String(i));
    expect(allowedMentions({ users: many, roles: [], everyone: false }).users).toHaveLength(100);
  });
});

describe('Discord config', () => {
  it('needs only a token, with defaults for the rest', () => {
    const cfg = discordConfigSchema.parse({ token: 't' });
    expect(cfg).toMatchObject({ enabled: true, messageContentIntent: true, displayNameTemplate: '$DISPLAY', maxMessageAgeSeconds: 900, roomLimit: 0,
      webhookName: 'Trestle bridge', everyoneMentionPower: 50, serverMembersIntent: true, spaces: true, linkApproval: { timeoutSeconds: 300 }, uploadLimitBytes: 10 * 1024 * 1024, guilds: [], mappings: {}, rolePowers: {} });
  });

  it('refuses what Discord or the bridge would refuse later', () => {
    expect(() => discordConfigSchema.parse({})).toThrow(/token/);
    expect(() => discordConfigSchema.parse({ token: 't', webhookName: 'My Discord hook' })).toThrow(/discord/);
    expect(() => discordConfigSchema.parse({ token: 't', restUrl: 'ftp://x' })).toThrow(/http/);
    expect(() => discordConfigSchema.parse({ token: 't', guilds: ['general'] })).toThrow(/snowflake/);
    expect(() => discordConfigSchema.parse({ token: 't', mappings: { '123456789012345678': ['#alias:x'] } })).toThrow(/room id/);
    expect(() => discordConfigSchema.parse({ token: 't', tokne: 'typo' })).toThrow();
    expect(() => discordConfigSchema.parse({ token: 't', linkApproval: { timeoutSeconds: 0 } })).toThrow(/timeoutSeconds/);
    expect(() => discordConfigSchema.parse({ token: 't', everyoneMentionPower: -1 })).toThrow(/everyoneMentionPower/);
    // the stopgap matrix section is gone (core hands networks the homeserver): a config that still has it is told
    expect(() => discordConfigSchema.parse({ token: 't', matrix: { homeserverUrl: 'http://hs', registration: 'r.yaml' } })).toThrow(/matrix/);
    expect(() => discordConfigSchema.parse({ token: 't', allowEveryoneMentions: true })).toThrow(); // replaced by everyoneMentionPower
  });
});
