/**
 * Commands, declared as data (name, arguments, help, permission) by core and by networks.
 *
 * - In a user's **admin room** (a DM with the bot) the whole message is the command: `help`,
 *   `ping`, `irc nick foo` (a network's command, prefixed with its id when two networks share a name).
 * - In any other room a command starts with `!trestle` or `!<network id>`: `!trestle link irc libera/#x`,
 *   `!irc nick foo`.
 */
import type { CommandInvocation, NetworkCommand } from '../network/contract.js';

export type CommandSpec = NetworkCommand;

export interface CommandEnv {
  permission(userId: string): 'none' | 'user' | 'admin';
  powerLevel(roomId: string, userId: string): Promise<number>;
  adminRoomOwner(roomId: string): string | undefined;
  reply(roomId: string, text: string): Promise<void>;
  /** The user's display name as the room shows it (else their profile's; else the user id). */
  memberName?(roomId: string, userId: string): Promise<string>;
  /** Told of a reply that could not be sent after a command ran (the command is not run again). */
  replyFailed?(roomId: string, command: string, err: Error): void;
  /** Remove (redact) a message that held a secret; rejects when the bridge may not. */
  removeMessage?(roomId: string, eventId: string, reason: string): Promise<void>;
}

/** Split a command line into words; "double quoted" words may hold spaces. */
export function tokenize(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(line); m; m = re.exec(line)) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!);
  return out;
}

export function usage(spec: CommandSpec): string {
  // `...rest` takes the rest of the line (spaces and all) and is shown like any required argument
  const args = (spec.args ?? []).map((a) => (a.startsWith('...') ? `<${a.slice(3)}>` : a.endsWith('?') ? `[${a.slice(0, -1)}]` : `<${a}>`));
  return [spec.name, ...args].join(' ');
}

/** Bind words to declared argument names; returns an error text when required ones are missing. */
export function bindArgs(spec: CommandSpec, words: string[], rest: string): Record<string, string | undefined> | string {
  const args: Record<string, string | undefined> = {};
  const decl = spec.args ?? [];
  for (const [i, a] of decl.entries()) {
    if (a.startsWith('...')) {
      // the rest of the line, as typed (spacing kept)
      const skip = words.slice(0, i);
      let r = rest;
      for (const w of skip) r = r.slice(r.indexOf(w) + w.length);
      const v = r.trim();
      if (!v) return `Missing <${a.slice(3)}>. Usage: ${usage(spec)}`;
      args[a.slice(3)] = v;
      break;
    }
    const name = a.endsWith('?') ? a.slice(0, -1) : a;
    args[name] = words[i];
    if (words[i] === undefined && !a.endsWith('?')) return `Missing <${name}>. Usage: ${usage(spec)}`;
  }
  return args;
}

export class CommandProcessor {
  private readonly core = new Map<string, CommandSpec>();
  private readonly byNetwork = new Map<string, Map<string, CommandSpec>>();

  constructor(private readonly env: CommandEnv) {}

  add(spec: CommandSpec, network?: string): void {
    if (!network) { this.core.set(spec.name, spec); return; }
    const m = this.byNetwork.get(network) ?? new Map<string, CommandSpec>();
    m.set(spec.name, spec);
    this.byNetwork.set(network, m);
  }

  helpText(isAdmin: boolean): string {
    const line = (s: CommandSpec, prefix = ''): string => `${prefix}${usage(s)} — ${s.help}${s.permission === 'admin' ? ' (admin)' : ''}`;
    const visible = (s: CommandSpec): boolean => isAdmin || s.permission !== 'admin';
    const out = ['Commands (in other rooms, start with !trestle or !<network>):', ...[...this.core.values()].filter(visible).map((s) => line(s))];
    for (const [net, cmds] of this.byNetwork) {
      const shown = [...cmds.values()].filter(visible);
      if (shown.length) out.push('', `${net}:`, ...shown.map((s) => line(s, `${net} `)));
    }
    return out.join('\n');
  }

  /** Handle a message if it is a command. Returns true when it was one (even a refused one). */
  async tryHandle(roomId: string, sender: string, body: string, eventId?: string): Promise<boolean> {
    const owner = this.env.adminRoomOwner(roomId);
    const inAdminRoom = owner === sender;
    let line = body.trim();
    let network: string | undefined;
    if (line.startsWith('!')) {
      const [head] = line.split(/\s+/, 1);
      const name = head!.slice(1);
      if (name === 'trestle') line = line.slice(head!.length).trim();
      else if (this.byNetwork.has(name)) { network = name; line = line.slice(head!.length).trim(); }
      else if (!inAdminRoom) return false;
      else line = line.slice(1);
    } else if (!inAdminRoom) {
      return false;
    }
    let words = tokenize(line);
    if (!network && words[0] && this.byNetwork.has(words[0]) && !this.core.has(words[0])) {
      network = words[0];
      line = line.slice(network.length).trim();
      words = words.slice(1);
    }
    const name = (words[0] ?? 'help').toLowerCase();
    const spec = network ? this.byNetwork.get(network)?.get(name) : this.findCommand(name);
    let reply = (text: string): Promise<void> => this.env.reply(roomId, text);
    if (spec?.secret) {
      // gone from the room before anything else, refused or not: the secret was shown to whoever is there
      const removed = eventId && this.env.removeMessage
        ? await this.env.removeMessage(roomId, eventId, `it held a secret for "${spec.name}"`).then(() => true, () => false) : false;
      const note = removed ? '(Your message was removed from the room: it held a secret.)'
        : 'Delete your message now: it holds a secret, and the bridge could not remove it.';
      const plain = reply;
      reply = (text) => plain(`${text}\n${note}`);
    }
    if (!spec) {
      const ambiguous = !network && [...this.byNetwork.entries()].filter(([, m]) => m.has(name)).map(([n]) => n);
      await reply(ambiguous && ambiguous.length > 1
        ? `Which network? Say ${ambiguous.map((n) => `"${n} ${name}"`).join(' or ')}.`
        : `Unknown command "${name}". Say "help" for the list.`);
      return true;
    }
    const level = this.env.permission(sender);
    const isAdmin = level === 'admin';
    if (level === 'none' || (spec.permission === 'admin' && !isAdmin)) {
      await reply(`You are not allowed to use "${spec.name}".`);
      return true;
    }
    if (spec.adminRoomOnly && !inAdminRoom) {
      await reply(`"${spec.name}" works only in your admin room (a direct chat with the bridge bot).`);
      return true;
    }
    const powerLevel = await this.env.powerLevel(roomId, sender);
    if (spec.roomPower !== undefined && !isAdmin && powerLevel < spec.roomPower) {
      await reply(`"${spec.name}" needs power level ${spec.roomPower} in this room (you have ${powerLevel}).`);
      return true;
    }
    const rest = line.slice(line.toLowerCase().indexOf(name) + name.length);
    const args = bindArgs(spec, words.slice(1), rest);
    if (typeof args === 'string') { await reply(args); return true; }
    const senderName = async (): Promise<string> => (await this.env.memberName?.(roomId, sender).catch(() => undefined)) ?? sender;
    const inv: CommandInvocation = { sender, roomId, args, powerLevel, inAdminRoom, isAdmin, reply, senderName };
    let out: string | void;
    try {
      out = await spec.run(inv);
    } catch (err) {
      out = `"${spec.name}" failed: ${(err as Error).message}`;
    }
    // the command has run: a reply that cannot be sent (the bot may not speak in the room, the
    // homeserver is down) is reported, never a reason for the caller to run the command again
    if (out) await reply(out).catch((err: unknown) => this.env.replyFailed?.(roomId, spec.name, err as Error));
    return true;
  }

  private findCommand(name: string): CommandSpec | undefined {
    const c = this.core.get(name);
    if (c) return c;
    const hits = [...this.byNetwork.values()].map((m) => m.get(name)).filter((s): s is CommandSpec => !!s);
    return hits.length === 1 ? hits[0] : undefined;
  }
}
