/** The `networks.discord` config section: its schema is the single source of truth (types, sample, validation). */
import { networkSection, presenceRefreshSecondsSchema } from '@trestle/core';
import { z } from 'zod';

/**
 * Floors of the login retry waits: not tuning advice, a guard against a retry loop (a first wait of
 * 0 stays 0 however often it doubles). Core's delivery waits have the same floors.
 */
const MIN_INITIAL_DELAY_MS = 50;
const MIN_MAX_DELAY_MS = 1000;

const snowflake = z.string().regex(/^\d{17,20}$/, { error: 'must be a Discord id (a snowflake such as 1234567890123456789)' });
const roomId = z.string().regex(/^!.+:.+$/, { error: 'must be a room id such as !abc:example.org' });
const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' });

export const discordConfigSchema = networkSection({
  token: z.string().min(1).meta({ examples: ['MTIz...bot-token'] })
    .describe('Bot token from the Discord developer portal (Bot tab). The bot needs the Manage Webhooks permission in bridged channels.'),
  restUrl: httpUrl.optional()
    .describe('Base URL of the Discord REST API (discord.js rest.api), only to point the bridge at a test server. Default: Discord.'),
  cdnUrl: httpUrl.optional()
    .describe('Base URL of the Discord CDN (discord.js rest.cdn), only to point the bridge at a test server. Default: Discord.'),
  messageContentIntent: z.boolean().default(true)
    .describe('Ask for the privileged Message Content intent (enable it in the developer portal). Without it Discord sends other ' +
      'people\'s messages blank, and the bridge reports that instead of bridging them.'),
  serverMembersIntent: z.boolean().default(true)
    .describe('Ask for the privileged Server Members intent (enable it in the developer portal). Without it the bridge does not ' +
      'see members leave, or being kicked or banned, on Discord, so their ghosts stay in the Matrix rooms.'),
  presence: z.boolean().default(false)
    .describe('Show Discord users\' status (online, idle, do not disturb, offline; their custom status as the status message) ' +
      'as the Matrix presence of their ghosts. Needs the privileged Presence intent (enable it in the developer portal) and ' +
      'presence enabled on the homeserver.'),
  presenceRefreshSeconds: presenceRefreshSecondsSchema,
  displayNameTemplate: z.string().min(1).default('$DISPLAY')
    .describe('Display name of a Discord user\'s ghost. $DISPLAY = server nickname, else global name, else username; ' +
      '$USERNAME = username; $ID = user id.'),
  webhookName: z.string().min(1).max(80).refine((s) => !/discord|clyde/i.test(s), { error: 'Discord refuses webhook names with "discord" or "clyde"' })
    .default('Trestle bridge').describe('Name of the webhook the bridge creates in each bridged channel to speak as Matrix users.'),
  maxMessageAgeSeconds: z.int().min(0).default(900)
    .describe('Live Discord messages older than this when they arrive are not bridged (events replayed late after a gateway ' +
      'outage); the room is told how many, with a link to them. Messages missed while the bridge was stopped are caught up ' +
      'however old (at most 500 per channel; the room is told of the rest). 0 = no limit.'),
  roomLimit: z.int().min(0).default(0).describe('Most Discord channels bridged at once; links and portals past it are refused (0 = no limit).'),
  linkApproval: z.strictObject({
    timeoutSeconds: z.int().min(1).default(300)
      .describe('How long a link request waits in the Discord channel for a member with Manage Webhooks to approve it.'),
  }).prefault({}).describe('"!discord link" asks in the Discord channel for approval before it links a Matrix room to it.'),
  guilds: z.array(snowflake).default([]).describe('If not empty, only channels of these servers (guild ids) can be bridged.'),
  everyoneMentionPower: z.int().min(0).default(50)
    .describe('Power level a Matrix user needs in the room to ping @everyone, @here and mentionable roles (@Role) on Discord, ' +
      'which Discord also grants as one permission; from others the words are sent defused, so they ping nobody. A level no one ' +
      'has, such as 1000, turns the pings off.'),
  uploadLimitBytes: z.int().min(0).default(10 * 1024 * 1024)
    .describe('Matrix files up to this size are uploaded to Discord; bigger ones are sent as a link.'),
  maxAttachmentBytes: z.int().min(0).default(50 * 1024 * 1024)
    .describe('Discord attachments up to this size are copied to the Matrix media repository; bigger ones are sent as a link.'),
  rolePowers: z.record(z.string().min(1), z.int().min(0).max(100)).default({}).meta({ examples: [{ Moderators: 50, Admins: 100 }] })
    .describe('Discord role (name or id) → Matrix power level of the ghosts of members with that role (the highest applies). ' +
      'Applied when a room is linked and when a member speaks; the bot needs the power to change power levels.'),
  mappings: z.record(snowflake, z.array(roomId)).default({}).meta({ examples: [{}] })
    .describe('Static links: Discord channel id → Matrix room ids, e.g. "123456789012345678": ["!abc:example.org"].'),
  spaces: z.boolean().default(true)
    .describe('Show each Discord server as a Matrix space holding its channels\' portal rooms, in Discord\'s order.'),
  reconnect: z.strictObject({
    initialDelayMs: z.int().min(MIN_INITIAL_DELAY_MS).default(1000)
      .describe(`First wait before retrying a failed login (Discord unreachable), in milliseconds. At least ${MIN_INITIAL_DELAY_MS}: ` +
        'the wait doubles from it, so 0 would retry in a tight loop.'),
    maxDelayMs: z.int().min(MIN_MAX_DELAY_MS).default(60_000)
      .describe(`Longest wait between login attempts, in milliseconds. At least ${MIN_MAX_DELAY_MS} (a second): it is how ` +
        'often the bridge tries while Discord is away, and Discord rate-limits (and may reset the token of) a bot that ' +
        'logs in too often.'),
  }).superRefine((reconnect, ctx) => {
    if (reconnect.maxDelayMs < reconnect.initialDelayMs) {
      ctx.addIssue({ code: 'custom', path: ['maxDelayMs'], message: `must be at least reconnect.initialDelayMs (${reconnect.initialDelayMs})` });
    }
  }).prefault({}).describe('Retrying the login while Discord cannot be reached, or ends the bot\'s session for good (a refused ' +
    'token or intents: the admins are told, and logins are then tried at most every 15 minutes, as Discord resets the token of a ' +
    'bot that starts too many sessions).'),
});

export type DiscordConfig = z.infer<typeof discordConfigSchema>;
