/** Pure converters between IRC and Matrix message text. No I/O: the bridge's actions call these. */
export {
  IrcCode,
  IRC_PALETTE,
  PLAIN_CODES,
  PLAIN_STYLE,
  ircColourToHex,
  nearestIrcColour,
  parseFormatting,
  sameStyle,
  stripFormatting,
  transitionCodes,
  type IrcCodeState,
  type IrcSpan,
  type IrcStyle,
} from './formatting.js';
export { escapeHtml, ircToMatrix, type IrcMention, type IrcToMatrixOptions, type MatrixText } from './ircToMatrix.js';
export { matrixToIrc, parsePill, stripControls, type MatrixMessageContent, type MatrixPill, type MatrixToIrcOptions } from './matrixToIrc.js';
export {
  applyLineLimit, maxPayloadBytes, multilineParts, splitForIrc, splitFormattedForIrc, truncateCodePoints, truncateUtf8, utf8Length, type MultilinePart,
} from './split.js';
export { replyLine, shortQuote } from './reply.js';
export { joinMultiline, type MultilineLine } from './multiline.js';
export { formatSize } from './size.js';
