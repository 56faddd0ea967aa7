/**
 * What IRC servers' refusals mean, in words for the Matrix user (pure tables). A user's own
 * connection (lean.ts) turns these replies into a notice or a failed join.
 */

/** An ERROR before registration that says the server bans us (K-, G-, Z-, D-lines, AKILL): no retry helps. */
export const BANNED = /\bbann?ed\b|\b[kgzd]-?lined?\b|\bakill/i;

/** Refusals of a NICK change after registration, in words for the Matrix user. */
export const NICK_ERRORS: Record<string, (nick: string, text: string) => string> = {
  '431': () => 'no nick given',
  '432': (n) => `${n} is not a valid nick`,
  '433': (n) => `${n} is already in use`,
  '435': (n, t) => `${n} cannot be used while you are banned from a channel (${t})`,
  '436': (n) => `${n} collided with another user`,
  '437': (n) => `${n} is temporarily unavailable`,
  '438': (_n, t) => `you are changing nicks too fast (${t})`,
  '447': (_n, t) => `the server does not allow nick changes now (${t})`,
  '484': () => 'your connection is restricted',
};

/**
 * Refusals of a JOIN, in words for a JOIN. 403, 437 and 477 answer other commands too (403 a
 * message to a channel that does not exist, 477 one to a channel only the logged-in may speak in,
 * 437 a NICK): one is a JOIN's refusal only while a JOIN of the channel it names waits (JoinWaits).
 */
export const JOIN_ERRORS: Record<string, string> = {
  '471': 'the channel is full', '473': 'the channel is invite-only', '474': 'you are banned from the channel',
  '475': 'the channel needs a key', '405': 'you joined too many channels',
  '403': 'the channel does not exist, and the server will not create it', // ERR_NOSUCHCHANNEL
  '437': 'the channel is temporarily unavailable', // ERR_UNAVAILRESOURCE: held after a netsplit, or by services
  '476': 'the channel name is not valid on this server', // ERR_BADCHANMASK
  '477': 'the channel lets in only users logged in to an account', // ERR_NEEDREGGEDNICK (+R and the like)
};

/**
 * irc-framework's names for those refusals (its `irc error` event has no numeric), to their
 * numerics. It has none for 403, 437, 476 and 477: it hands those over as `unknown command`
 * with the numeric (see JoinWaits.refusal).
 */
const JOIN_ERROR_NAMES: Record<string, string> = {
  channel_is_full: '471', invite_only_channel: '473', banned_from_channel: '474', bad_channel_key: '475', too_many_channels: '405',
};

/** The words for a join refusal irc-framework reports by name, if it is one. */
export const joinErrorByName = (name: string): string | undefined => {
  const numeric = Object.hasOwn(JOIN_ERROR_NAMES, name) ? JOIN_ERROR_NAMES[name] : undefined;
  return numeric === undefined ? undefined : JOIN_ERRORS[numeric];
};
