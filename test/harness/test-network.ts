/**
 * A test-only network connector that plays "the remote side" for core's end-to-end tests.
 *
 * In-process, a test drives it directly: `inject*()` reports remote events through core's sink,
 * and `received` / `waitFor()` show what core delivered from Matrix. As a separate process
 * (`trestle start` with `module:` pointing here), it reads remote messages from `feedFile`
 * (JSON lines, paced) with a checkpoint in core's key-value store, and appends everything it
 * receives from Matrix to `outFile`, so a test can kill the process and check what survived.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import {
  networkSection, type EditCapable, type MatrixEdit, type MatrixMessage, type MatrixReaction, type MatrixRedaction,
  type MatrixSender, type NetworkConnector, type NetworkContext, type NetworkModule, type ReactionCapable,
  type RedactionCapable, type RemoteMessage, type SendResult,
} from '@trestle/core';

export const testNetworkSchema = networkSection({
  displayName: z.string().default('Test network').describe('Human name.'),
  userPrefix: z.string().default('test_').describe('Ghost localpart prefix.'),
  aliasPrefix: z.string().optional().describe('Portal alias prefix.'),
  feedFile: z.string().optional().describe('JSON-lines file of remote messages to report (process mode).'),
  feedIntervalMs: z.number().int().min(0).default(5).describe('Pause between fed messages.'),
  outFile: z.string().optional().describe('JSON-lines file to append what Matrix sent (process mode).'),
  failChats: z.array(z.string()).default([]).describe('Remote chats whose deliveries always fail (to test give-up notices).'),
});

export type TestNetworkConfig = z.infer<typeof testNetworkSchema>;

export type Received =
  | { kind: 'message'; msg: MatrixMessage }
  | { kind: 'edit'; edit: MatrixEdit }
  | { kind: 'redaction'; redaction: MatrixRedaction }
  | { kind: 'reaction'; reaction: MatrixReaction };

export class TestNetwork implements NetworkConnector, EditCapable, RedactionCapable, ReactionCapable {
  readonly identity;
  readonly received: Received[] = [];
  readonly connectedUsers = new Set<string>();
  ctx?: NetworkContext;
  private nextId = 1;
  private waiters: { pred: (r: Received) => boolean; resolve: (r: Received) => void }[] = [];
  private feedTimer?: NodeJS.Timeout;
  private stopped = false;

  constructor(readonly id: string, private readonly cfg: TestNetworkConfig) {
    this.identity = {
      id,
      displayName: cfg.displayName,
      userPrefix: cfg.userPrefix,
      ...(cfg.aliasPrefix ? { aliasPrefix: cfg.aliasPrefix } : {}),
      ghostLocalpart: (user: string) => user,
    };
  }

  async start(ctx: NetworkContext): Promise<void> {
    this.ctx = ctx;
    if (this.cfg.feedFile) this.runFeed(this.cfg.feedFile);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.feedTimer) clearTimeout(this.feedTimer);
  }

  async connectMatrixUser(user: MatrixSender): Promise<void> {
    this.connectedUsers.add(user.userId);
  }

  private record(r: Received): void {
    if (this.cfg.outFile) appendFileSync(this.cfg.outFile, JSON.stringify(r) + '\n');
    this.received.push(r);
    for (const w of [...this.waiters]) {
      if (w.pred(r)) { this.waiters.splice(this.waiters.indexOf(w), 1); w.resolve(r); }
    }
  }

  private check(chat: string): void {
    if (this.cfg.failChats.includes(chat)) throw new Error(`test network: chat ${chat} refuses deliveries`);
  }

  async handleMatrixMessage(msg: MatrixMessage): Promise<SendResult> {
    this.check(msg.portal.remoteChat);
    const remoteId = `${this.id}-m${this.nextId++}`;
    this.record({ kind: 'message', msg });
    return { remoteIds: [remoteId] };
  }

  async handleMatrixEdit(edit: MatrixEdit): Promise<void> {
    this.check(edit.portal.remoteChat);
    this.record({ kind: 'edit', edit });
  }

  async handleMatrixRedaction(redaction: MatrixRedaction): Promise<void> {
    this.check(redaction.portal.remoteChat);
    this.record({ kind: 'redaction', redaction });
  }

  async handleMatrixReaction(reaction: MatrixReaction): Promise<void> {
    this.record({ kind: 'reaction', reaction });
  }

  /** Resolves with the first received item (already received or future) that matches. */
  waitFor(pred: (r: Received) => boolean, timeoutMs = 30_000): Promise<Received> {
    const found = this.received.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve: (r: Received) => { clearTimeout(t); resolve(r); } };
      const t = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`test network ${this.id}: nothing matching arrived within ${timeoutMs} ms (received ${this.received.length})`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  get remote(): NetworkContext['remote'] {
    if (!this.ctx) throw new Error('test network not started');
    return this.ctx.remote;
  }

  /** Report a plain text message from a remote user. */
  async injectText(chat: string, user: { id: string; name: string }, body: string, opts: { id?: string; replyTo?: string } = {}): Promise<string> {
    const id = opts.id ?? `${this.id}-r${this.nextId++}`;
    const msg: RemoteMessage = {
      chat, id, sender: { id: user.id, displayName: user.name }, parts: [{ content: { msgtype: 'm.text', body } }],
      ...(opts.replyTo ? { replyTo: opts.replyTo } : {}),
    };
    await this.remote.message(msg);
    return id;
  }

  /** Process mode: report each line of the feed file once, in order, checkpointing after each. */
  private runFeed(file: string): void {
    const kv = this.ctx!.kv;
    const tick = async (): Promise<void> => {
      if (this.stopped) return;
      const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
      const done = Number(kv.get('feed.done') ?? '0');
      if (done < lines.length) {
        const item = JSON.parse(lines[done]!) as { chat: string; id: string; user: string; body: string };
        await this.remote.message({
          chat: item.chat, id: item.id, sender: { id: item.user, displayName: item.user },
          parts: [{ content: { msgtype: 'm.text', body: item.body } }],
        });
        kv.set('feed.done', String(done + 1));
      }
      this.feedTimer = setTimeout(() => void tick(), done < lines.length ? this.cfg.feedIntervalMs : 50);
    };
    void tick();
  }
}

const testNetworkModule: NetworkModule = {
  id: 'test',
  configSchema: testNetworkSchema,
  create: (config, id) => new TestNetwork(id, testNetworkSchema.parse(config ?? {})),
};

export default testNetworkModule;
