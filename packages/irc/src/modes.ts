/**
 * Channel modes as the listening connection sees them, and what they mean for the Matrix room.
 * Pure: no I/O; server.ts feeds it MODE lines, RPL_CHANNELMODEIS (324), NAMES, parts and nick
 * changes, and reports what it returns.
 *
 * - Membership modes (the keys of `modePowers` that the server's ISUPPORT PREFIX lists) become
 *   ghost power levels. A letter means what the server says it means: on solanum `+q` is a quiet
 *   (a list mode, CHANMODES type A), not founder (see {@link modeMeanings}).
 * - `+m` (moderated) becomes the power level needed to send: the level of voice, since on IRC
 *   voiced users and above may talk in a moderated channel.
 * - `+i` (invite only) and `+k` (key) make the room invite-only; when neither is left, the room
 *   goes back to the join rule it had before the bridge changed it.
 * - `+s` (secret) and `+p` (private) keep a portal room out of the room directory (directory.ts).
 *
 * One MODE line gives one {@link ModeOutcome}: the ranks and the room settings it changed
 * together, so they can reach Matrix as one power-levels change.
 */
import { ircLower, moveChannel } from './ids.js';

/** One parsed mode change, as irc-framework gives them: `{ mode: '+o', param: 'nick' }`. */
export interface ModeChange { mode: string; param?: string }

/** Room settings a change of channel flags asks for. Absent = unchanged. */
export interface RoomSettingsChange {
  /** Power level needed to send messages; `null` = back to what the room had before the bridge changed it. */
  sendLevel?: number | null;
  /** true: only invited users may join; false: back to the room's own join rule. */
  inviteOnly?: boolean;
  /** true: the channel is secret or private (`+s`, `+p`), so its portal is not listed; false: it may be. */
  secret?: boolean;
}

export interface ModeOutcome {
  /** Nicks whose membership modes changed (their power level is to be recomputed). */
  ranked: string[];
  /** Room settings that changed, if any. */
  settings?: RoomSettingsChange;
}

/** The channel flags that map to room settings. */
const SETTING_FLAGS = new Set(['m', 'i', 'k', 's', 'p']);

/**
 * What the server says of its channel modes; any part may be missing (a server that sent no
 * ISUPPORT, a test), and then the defaults of before apply: every key of `modePowers` is a rank.
 */
export interface ServerModeInfo {
  /** Membership mode letters (ISUPPORT PREFIX), highest first. */
  prefix?: readonly string[];
  /** ISUPPORT CHANMODES: the letters of types A (lists), B, C and D (flags). */
  chanmodes?: readonly string[];
  /** The server software as RPL_YOURHOST names it, e.g. `solanum-1.0-dev`. */
  software?: string;
}

/**
 * Server software that gives `+u` a meaning of its own (solanum, Libera's: "unfiltered"). Taken
 * for auditorium there, a NAMES would never be trusted and ghosts of those who left while the
 * bridge was away would stay. CHANMODES cannot tell: both are plain flags (type D).
 */
const U_NOT_AUDITORIUM = /^solanum\b/i;

/**
 * What mode letters mean on a server. A letter is a rank only if it has a power in `modePowers`,
 * the server's PREFIX lists it (when it sent one) and it is not a list mode (CHANMODES type A:
 * bans, quiets, exceptions, whose parameter is a mask, not a nick). `+u` is auditorium (ergo,
 * InspIRCd) unless CHANMODES makes it something other than a flag or the software is one known to
 * use it otherwise.
 */
export function modeMeanings(info: ServerModeInfo, modePowers: Readonly<Record<string, number>>): { isRank: (letter: string) => boolean; auditorium: boolean } {
  const lists = info.chanmodes?.[0] ?? '';
  const isRank = (letter: string): boolean => letter in modePowers && !lists.includes(letter) && (info.prefix?.includes(letter) ?? true);
  const uIsFlag = info.chanmodes === undefined || (info.chanmodes[3] ?? '').includes('u');
  return { isRank, auditorium: uIsFlag && !U_NOT_AUDITORIUM.test(info.software ?? '') };
}

interface Channel {
  flags: Set<string>; members: Map<string, Set<string>>; synced: boolean;
  /** Ban masks as the server wrote them, by their lower-cased form. */ bans: Map<string, string>;
  /** Auditorium mode (`+u`, ergo and InspIRCd): NAMES shows the unvoiced only the voiced and up. */
  auditorium: boolean;
  /** Nicks that left holding a rank: their ghosts' power levels still say so until they are back without it. */
  departed: Set<string>;
}

const isSecret = (flags: ReadonlySet<string>): boolean => flags.has('s') || flags.has('p');

/** A member leaves a channel: its modes go, and whether it held a rank is remembered (see rankLeftWith). */
function departs(c: Channel, lc: string): void {
  if (c.members.get(lc)?.size) c.departed.add(lc);
  c.members.delete(lc);
}

export class ChannelModes {
  private readonly channels = new Map<string, Channel>();

  /**
   * @param modePowers membership mode letter → Matrix power level (the server's `modePowers` config).
   * @param server what the server says of its modes now (read at each line: ISUPPORT comes after connecting).
   */
  constructor(private readonly modePowers: Readonly<Record<string, number>>, private readonly server: () => ServerModeInfo = () => ({})) {}

  private meanings(): ReturnType<typeof modeMeanings> { return modeMeanings(this.server(), this.modePowers); }

  /** The channel was renamed on the server: its modes, ranks and bans are the new name's. */
  channelRenamed(from: string, to: string): void { moveChannel(this.channels, from, to); }

  /** Power level needed to talk in a moderated channel: voice's level (or the lowest configured one). */
  get moderatedSendLevel(): number {
    const v = this.modePowers['v'];
    if (v !== undefined) return v;
    const levels = Object.values(this.modePowers).filter((l) => l > 0);
    return levels.length ? Math.min(...levels) : 1;
  }

  private channel(name: string): Channel {
    const key = ircLower(name);
    let c = this.channels.get(key);
    if (!c) { c = { flags: new Set(), members: new Map(), synced: false, bans: new Map(), auditorium: false, departed: new Set() }; this.channels.set(key, c); }
    return c;
  }

  /** The membership modes of a nick in a channel (a copy). */
  modesOf(channel: string, nick: string): Set<string> {
    return new Set(this.channels.get(ircLower(channel))?.members.get(ircLower(nick)) ?? []);
  }

  /** Is the nick a channel operator (`o`) or above there? */
  isOperator(channel: string, nick: string): boolean {
    const modes = this.modesOf(channel, nick);
    return ['q', 'a', 'o'].some((m) => modes.has(m));
  }

  /** Is the nick a channel operator (or above, or half-op) there: may it kick and ban? */
  canKick(channel: string, nick: string): boolean {
    return this.isOperator(channel, nick) || this.modesOf(channel, nick).has('h');
  }

  /** The power level a nick's modes give (the highest of them; 0 without any). */
  levelOf(channel: string, nick: string): number {
    return Math.max(0, ...[...this.modesOf(channel, nick)].map((m) => this.modePowers[m] ?? 0));
  }

  /**
   * Does a NAMES of this channel list everyone in it? Not in auditorium mode, where members see only
   * some of the others; undefined until the channel's modes are known (RPL_CHANNELMODEIS).
   */
  namesComplete(channel: string): boolean | undefined {
    const c = this.channels.get(ircLower(channel));
    return c?.synced ? !c.auditorium : undefined;
  }

  /** Channel flags that map to room settings, e.g. `['i', 'm']`. */
  flagsOf(channel: string): string[] {
    return [...(this.channels.get(ircLower(channel))?.flags ?? [])].sort();
  }

  /** A MODE line on a channel. */
  apply(channel: string, changes: readonly ModeChange[]): ModeOutcome {
    const c = this.channel(channel);
    const before = new Set(c.flags);
    const ranked = new Set<string>();
    const { isRank, auditorium } = this.meanings();
    for (const { mode, param } of changes) {
      const add = mode.startsWith('+');
      const letter = mode.slice(1);
      if (isRank(letter)) {
        if (!param) continue;
        const lc = ircLower(param);
        const set = c.members.get(lc) ?? new Set<string>();
        if (add) set.add(letter); else set.delete(letter);
        if (set.size) c.members.set(lc, set); else c.members.delete(lc);
        ranked.add(param);
      } else if (SETTING_FLAGS.has(letter)) {
        if (add) c.flags.add(letter); else c.flags.delete(letter);
      } else if (letter === 'u' && auditorium) {
        c.auditorium = add;
      } else if (letter === 'b' && param) {
        if (add) c.bans.set(ircLower(param), param); else c.bans.delete(ircLower(param));
      }
    }
    const settings = this.diff(before, c.flags);
    return { ranked: [...ranked], ...(settings ? { settings } : {}) };
  }

  /**
   * The channel's whole mode string (RPL_CHANNELMODEIS, the answer to `MODE #chan`). The first
   * answer for a channel reports every setting, not only changes: the room may still carry what
   * the bridge set before a restart, and the receiver treats "unchanged" as nothing to do.
   */
  replace(channel: string, modes: readonly ModeChange[]): RoomSettingsChange | undefined {
    const c = this.channel(channel);
    const before = new Set(c.flags);
    c.flags.clear();
    c.auditorium = false;
    const { auditorium } = this.meanings();
    for (const { mode } of modes) {
      const letter = mode.slice(1);
      if (mode.startsWith('+') && SETTING_FLAGS.has(letter)) c.flags.add(letter);
      if (mode === '+u' && auditorium) c.auditorium = true;
    }
    if (!c.synced) {
      c.synced = true;
      return { sendLevel: c.flags.has('m') ? this.moderatedSendLevel : null, inviteOnly: c.flags.has('i') || c.flags.has('k'), secret: isSecret(c.flags) };
    }
    return this.diff(before, c.flags);
  }

  /** The channel's ban list (RPL_BANLIST, asked for when the listener joins) replaces what was known. */
  banList(channel: string, masks: readonly string[]): void {
    const c = this.channel(channel);
    c.bans = new Map(masks.map((mask) => [ircLower(mask), mask]));
  }

  /**
   * Bans on this very nick (`nick!user@host` masks whose nick part is the nick, case-insensitively):
   * what lifting a Matrix ban of its ghost undoes. Masks with wildcards in the nick part (`*!*@host`)
   * are about more people than this one and are left alone.
   */
  bansOn(channel: string, nick: string): string[] {
    const lc = ircLower(nick);
    return [...(this.channels.get(ircLower(channel))?.bans ?? [])].filter(([lower]) => lower.split('!')[0] === lc).map(([, mask]) => mask);
  }

  /** NAMES for a channel: the membership modes of everyone listed replace what was known. */
  names(channel: string, users: readonly { nick: string; modes?: readonly string[] }[]): string[] {
    const c = this.channel(channel);
    const ranked: string[] = [];
    const { isRank } = this.meanings();
    for (const u of users) {
      const modes = new Set((u.modes ?? []).filter(isRank));
      const had = c.members.get(ircLower(u.nick));
      if (modes.size) c.members.set(ircLower(u.nick), modes); else c.members.delete(ircLower(u.nick));
      if (modes.size || had?.size) ranked.push(u.nick);
    }
    return ranked;
  }

  /** A nick left a channel (part, kick): its modes there are gone. */
  left(channel: string, nick: string): void {
    const c = this.channels.get(ircLower(channel));
    if (c) departs(c, ircLower(nick));
  }

  /** A nick quit: its modes everywhere are gone. */
  quit(nick: string): void {
    for (const c of this.channels.values()) departs(c, ircLower(nick));
  }

  /**
   * A nick joined: did it leave holding a rank (so its ghost's power level may still show one it
   * no longer has)? Answered once per departure.
   */
  rankLeftWith(channel: string, nick: string): boolean {
    return this.channels.get(ircLower(channel))?.departed.delete(ircLower(nick)) ?? false;
  }

  /** Report the whole state at the next RPL_CHANNELMODEIS (a room was just linked and knows nothing yet). */
  resync(channel: string): void { this.channel(channel).synced = false; }

  /** The listener left a channel (or lost its connection): everything known about it is stale. */
  forget(channel: string): void { this.channels.delete(ircLower(channel)); }
  forgetAll(): void { this.channels.clear(); }

  renamed(oldNick: string, newNick: string): void {
    for (const c of this.channels.values()) if (c.departed.delete(ircLower(oldNick))) c.departed.add(ircLower(newNick));
    for (const c of this.channels.values()) {
      const modes = c.members.get(ircLower(oldNick));
      if (!modes) continue;
      c.members.delete(ircLower(oldNick));
      c.members.set(ircLower(newNick), modes);
    }
  }

  private diff(before: ReadonlySet<string>, after: ReadonlySet<string>): RoomSettingsChange | undefined {
    const out: RoomSettingsChange = {};
    if (before.has('m') !== after.has('m')) out.sendLevel = after.has('m') ? this.moderatedSendLevel : null;
    const inviteBefore = before.has('i') || before.has('k');
    const inviteAfter = after.has('i') || after.has('k');
    if (inviteBefore !== inviteAfter) out.inviteOnly = inviteAfter;
    if (isSecret(before) !== isSecret(after)) out.secret = isSecret(after);
    return Object.keys(out).length ? out : undefined;
  }
}

/**
 * Matrix → IRC: the membership mode changes that give a nick the rank closest to a Matrix power
 * level, reading `modePowers` backwards. The nick gets the highest mode whose power is at most the
 * level (50 → `o`, 10 → `v`, 0 → none) and loses the modes above the level; modes below it stay.
 * Only what the setter may hand out is used: a mode worth more than the setter's own rank (an op
 * cannot make a founder) is neither given nor taken, and is listed in `beyondReach`.
 *
 * @param supported the server's membership modes (ISUPPORT PREFIX), e.g. `['q', 'a', 'o', 'h', 'v']`.
 */
export function modeChangesForLevel(opts: {
  level: number; held: ReadonlySet<string>; modePowers: Readonly<Record<string, number>>;
  supported: readonly string[]; setterLevel: number;
}): { changes: ModeChange[]; beyondReach: string[] } {
  const { level, held, modePowers, setterLevel } = opts;
  const power = (m: string): number => modePowers[m] ?? 0;
  const usable = opts.supported.filter((m) => power(m) > 0);
  const changes: ModeChange[] = [];
  const beyondReach: string[] = [];
  for (const m of usable) {
    if (!held.has(m) || power(m) <= level) continue;
    if (power(m) <= setterLevel) changes.push({ mode: `-${m}` }); else beyondReach.push(m);
  }
  const best = usable.filter((m) => power(m) <= level).sort((a, b) => power(b) - power(a));
  const want = best.find((m) => power(m) <= setterLevel);
  if (best[0] !== undefined && best[0] !== want && !held.has(best[0])) beyondReach.push(best[0]);
  // already holding the wanted rank, or a higher one within the level: nothing to add
  const covered = [...held].some((m) => power(m) <= level && want !== undefined && power(m) >= power(want));
  if (want !== undefined && !covered) changes.unshift({ mode: `+${want}` });
  return { changes, beyondReach };
}
