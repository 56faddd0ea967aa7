/**
 * Lines a Matrix user's connection (lean.ts) sent without a label, and which of them the server's
 * error replies refuse. Most networks (Libera.Chat's among them) have no IRCv3 labeled-response,
 * so an error reply names a target, never the line it answers. Pure: unit-tested without I/O.
 *
 * lean.ts writes a PING after the lines it sends together: their *barrier*. A server answers a
 * connection's commands in order, so the PONG comes after every answer to the lines before it:
 * those with no refusal by then were sent. An error heard before the PONG is taken for the
 * refusal of the first line, under the oldest unanswered barrier, that goes to the target it names
 * and is not refused yet, and only if it is a reply that can refuse a line of that kind.
 *
 * That last condition matters because the connection writes other lines to the same targets,
 * unlabeled and unconfirmed: JOINs and PARTs, a moderator's MODE or KICK, a raw command, a NICK.
 * Their errors (482 not an operator, 442 not on that channel, 471-475 cannot join, 433 nick in
 * use) said nothing about a message sent just after, and taking them for its refusal told its
 * sender that a message everyone saw was refused. What can refuse a message and also answer other
 * commands is mostly a target that does not exist (401-403): another command drawing one means a
 * message to that target written about then draws one too, so it ends refused whichever of the two
 * is taken for its refusal. 477 (a registered nick needed) also refuses a JOIN; a message to that
 * channel from outside it is refused too (404) unless the channel lets outsiders speak: a false
 * refusal is left for that rare case rather than a true one missed (a message lost unsaid).
 */

/** The lines that wait for a barrier, by the command they are sent with (ACTION is a PRIVMSG; MULTILINE a batch of them). */
export type BarrierKind = 'PRIVMSG' | 'NOTICE' | 'ACTION' | 'TAGMSG' | 'MULTILINE' | 'REDACT' | 'TOPIC';

/**
 * The error replies that can refuse a message and name its target first. Not 411/412 (no
 * recipient, no text: they name none), 406 (WHOWAS), 405 and 471-475 (JOIN), 442 (PART, TOPIC,
 * KICK), 482 (operator commands), 489 (mostly a JOIN's: +z), 433-437 (NICK).
 */
const MESSAGE_REFUSALS: ReadonlySet<string> = new Set([
  '401', // ERR_NOSUCHNICK: no such nick/channel
  '402', // ERR_NOSUCHSERVER: a nick@server target
  '403', // ERR_NOSUCHCHANNEL (ergo says it for a message to a channel that does not exist)
  '404', // ERR_CANNOTSENDTOCHAN: banned, quieted, +m, +n...
  '407', // ERR_TOOMANYTARGETS: duplicate recipients
  '413', '414', // ERR_NOTOPLEVEL, ERR_WILDTOPLEVEL: a $mask target
  '477', // ERR_NEEDREGGEDNICK: a channel only registered users may speak in (InspIRCd +M)
  '486', // ERR_NONONREG: a user who takes messages from logged-in users only
  '492', // ERR_NOCTCP: a user or channel that takes no CTCP
  '531', // ERR_CANTSENDTOUSER: a user who takes no private messages (+D, +R...)
  '716', // ERR_TARGUMODEG: a user in server-side ignore (+g): not delivered (717 only says they were told)
]);

/** A topic is refused as a message is not: not an operator (482), not in the channel (442). */
const TOPIC_REFUSALS: ReadonlySet<string> = new Set(['401', '403', '442', '477', '482']);

const REFUSALS: Record<BarrierKind, ReadonlySet<string>> = {
  PRIVMSG: MESSAGE_REFUSALS, NOTICE: MESSAGE_REFUSALS, ACTION: MESSAGE_REFUSALS, TAGMSG: MESSAGE_REFUSALS, MULTILINE: MESSAGE_REFUSALS,
  // a redaction is refused with FAIL REDACT (standard replies); these are servers that answer in numerics
  REDACT: TOPIC_REFUSALS, TOPIC: TOPIC_REFUSALS,
};

/** An error reply: 4xx and 5xx, and 716 (a message a user in +g never gets). */
export const isErrorReply = (command: string): boolean => /^[45]\d\d$/.test(command) || command === '716';

/** Can this error reply refuse a line of this kind? */
export const canRefuse = (numeric: string, kind: BarrierKind): boolean => REFUSALS[kind].has(numeric);

/** A line under a barrier: its key in lean.ts's `awaiting`, its kind, its target (folded), and its refusal once one came. */
export interface BarrierLine { key: string; kind: BarrierKind; target: string; refusal?: string }

export class Barriers {
  /** Barriers written and not answered yet, oldest first: the PING's token and the lines before it. */
  private pending: { token: string; lines: BarrierLine[] }[] = [];

  get size(): number { return this.pending.length; }

  /** A PING with this token was written after these lines. */
  add(token: string, lines: BarrierLine[]): void { this.pending.push({ token, lines }); }

  /**
   * The PONG of `token`: its lines, and those of any barrier before it (the server answered them
   * first), each with the refusal heard meanwhile (none: sent). A PONG of nothing here: none.
   */
  answered(token: string): BarrierLine[] {
    const at = this.pending.findIndex((b) => b.token === token);
    if (at < 0) return [];
    return this.pending.splice(0, at + 1).flatMap((b) => b.lines);
  }

  /**
   * An error reply without a label, about `target` (folded): the refusal of the line it answers,
   * if that is one of these (see the file's comment). Lines of earlier barriers had their answers
   * before those barriers' PONGs, so only the oldest one's lines can be the one.
   */
  error(numeric: string, target: string, text: string): void {
    const line = this.pending[0]?.lines.find((l) => l.refusal === undefined && l.target === target && canRefuse(numeric, l.kind));
    if (line) line.refusal = text;
  }

  /** The connection is gone: what waited is failed by its `awaiting` entry, not here. */
  clear(): void { this.pending = []; }
}
