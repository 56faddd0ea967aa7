/**
 * A plain IRC user for tests: irc-framework against the real ergo server, recording every line
 * it sees. Nothing of the bridge is used here.
 */
import IRC from 'irc-framework';

export interface SeenMessage { type: 'privmsg' | 'notice' | 'action'; nick: string; target: string; message: string; tags: Record<string, string> }

export class IrcUser {
  readonly client: InstanceType<typeof IRC.Client>;
  readonly messages: SeenMessage[] = [];
  readonly raw: string[] = [];
  nick: string;
  /** The username (ident) it registers with. */
  username = 'tester';
  /** The server password it sends (PASS), if any. */
  password?: string;

  constructor(readonly host: string, readonly port: number, nick: string, caps: string[] = []) {
    this.nick = nick;
    this.client = new IRC.Client({ auto_reconnect: false, enable_echomessage: false });
    this.client.requestCap(['draft/message-redaction', 'labeled-response', ...caps]);
    for (const type of ['privmsg', 'notice', 'action'] as const) {
      this.client.on(type, (e: Omit<SeenMessage, 'type'>) => this.messages.push({ type, nick: e.nick, target: e.target, message: e.message, tags: e.tags ?? {} }));
    }
    this.client.on('raw', (e: { line: string; from_server: boolean }) => { if (e.from_server) this.raw.push(e.line); });
    this.client.on('nick', (e: { nick: string; new_nick: string }) => { if (e.nick === this.nick) this.nick = e.new_nick; });
  }

  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${this.nick}: IRC registration timed out`)), 15_000);
      this.client.once('registered', () => { clearTimeout(t); resolve(); });
      this.client.connect({ host: this.host, port: this.port, nick: this.nick, username: this.username, gecos: 'test user', ...(this.password ? { password: this.password } : {}) });
    });
  }

  /** Join a channel; fails with the server's reason (banned, invite only...) or after `timeoutMs`. */
  join(channel: string, timeoutMs = 15_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const same = (c?: string): boolean => c?.toLowerCase() === channel.toLowerCase();
      const done = (): void => { clearTimeout(t); this.client.off('join', on); this.client.off('irc error', onErr); };
      const on = (e: { nick: string; channel: string }): void => { if (e.nick === this.nick && same(e.channel)) { done(); resolve(); } };
      const onErr = (e: { error: string; channel?: string; reason?: string }): void => {
        if (same(e.channel)) { done(); reject(new Error(`${this.nick} cannot join ${channel}: ${e.error} ${e.reason ?? ''}`)); }
      };
      const t = setTimeout(() => { done(); reject(new Error(`${this.nick}: joining ${channel} timed out`)); }, timeoutMs);
      this.client.on('join', on);
      this.client.on('irc error', onErr);
      this.client.join(channel);
    });
  }

  say(target: string, text: string, tags?: Record<string, string>): void { this.client.say(target, text, tags); }

  async waitFor(pred: (m: SeenMessage) => boolean, timeoutMs = 20_000): Promise<SeenMessage> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const m = this.messages.find(pred);
      if (m) return m;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${this.nick}: no matching IRC message within ${timeoutMs} ms; last: ${JSON.stringify(this.messages.slice(-5))}`);
  }

  async waitForRaw(pred: (line: string) => boolean, timeoutMs = 20_000): Promise<string> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const m = this.raw.find(pred);
      if (m) return m;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${this.nick}: no matching raw line within ${timeoutMs} ms`);
  }

  /** Names in a channel, by asking the server. */
  names(channel: string): Promise<string[]> {
    return new Promise((resolve) => {
      const on = (e: { channel: string; users: { nick: string }[] }): void => {
        if (e.channel.toLowerCase() === channel.toLowerCase()) { this.client.off('userlist', on); resolve(e.users.map((u) => u.nick)); }
      };
      this.client.on('userlist', on);
      this.client.raw('NAMES', channel);
    });
  }

  /** Ask for the channel's recent history (needs the draft/chathistory cap); lines arrive as messages. */
  requestHistory(channel: string, limit = 50): void { this.client.raw('CHATHISTORY', 'LATEST', channel, '*', String(limit)); }

  quit(): void { this.client.quit('bye'); }
}
