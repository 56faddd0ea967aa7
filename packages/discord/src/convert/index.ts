/** Pure converters between Discord and Matrix message text. No I/O: the bridge's actions call these. */
export { defuseEveryone, escapeDiscordMarkdown, isPlain, parseDiscordMarkdown, type MdNode } from './markdown.js';
export {
  allowedMentions, channelMention, customEmoji, customEmojisIn, escapeHtml, mentionedUserIds, parsePermalink, roleMention,
  roomPillHref, userMention, userPillHref, type AllowedMentions, type MatrixPermalink,
} from './mentions.js';
export {
  discordToMatrix, embedText, formatTimestamp, msgtypeFor, pollResultText, pollText, reactionKeyToMatrix, textContent, type DiscordPoll,
  type DiscordToMatrixResolver, type MatrixText,
} from './discordToMatrix.js';
export {
  LONG_TEXT_FILE, MAX_PARTS, matrixToDiscord, replyQuote, splitCapped, splitMessage, webhookUsername, type DiscordEmoji, type DiscordRole,
  type DiscordText, type MatrixToDiscordResolver,
} from './matrixToDiscord.js';
export { nameKey } from './unicode.js';
