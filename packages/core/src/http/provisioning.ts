/**
 * The provisioning HTTP API (bearer secret): what an integration manager or an admin script uses
 * to link and unlink rooms without typing commands.
 *   GET  /networks                    → [{ id, displayName }]
 *   GET  /links?room_id=!r            → [{ network, remoteChat, kind }]
 *   POST /link   { room_id, network, remote_chat, user_id }
 *   POST /unlink { room_id, network, remote_chat, user_id }
 * Linking and unlinking follow the `link` command's rules for `user_id`: allowed to use the bridge,
 * and power level 50 in the room (or a bridge admin).
 */
import type { Request, Response, Router } from 'express';
import { timingSafeEqual } from 'node:crypto';
import type { BuiltinHost } from '../commands/builtins.js';
import { express } from './express.js';

/** What the API needs besides the commands' host: who may change a room's links. */
export interface ProvisioningHost extends BuiltinHost {
  /** Why `userId` may not link or unlink in `roomId` (the rules of the commands), or undefined if they may. */
  linkRefusal(roomId: string, userId: string): Promise<string | undefined>;
}

export function provisioningRouter(secret: string, host: ProvisioningHost): Router {
  const r = express().Router();
  // the secret first: nothing of a request without it is read
  r.use((req, res, next) => {
    const given = Buffer.from((req.header('authorization') ?? '').replace(/^Bearer /, ''));
    const want = Buffer.from(secret);
    if (given.length !== want.length || !timingSafeEqual(given, want)) {
      res.status(403).json({ errcode: 'M_FORBIDDEN', error: 'Bad provisioning secret' });
      return;
    }
    next();
  });
  r.use(express().json({ limit: '64kb' }));
  const fields = (req: Request, res: Response, names: string[]): Record<string, string> | undefined => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const missing = names.filter((n) => typeof body[n] !== 'string' || !body[n]);
    if (missing.length) {
      res.status(400).json({ errcode: 'M_BAD_JSON', error: `missing string field(s): ${missing.join(', ')}` });
      return undefined;
    }
    return Object.fromEntries(names.map((n) => [n, body[n] as string]));
  };
  const refused = async (res: Response, roomId: string, userId: string): Promise<boolean> => {
    const why = await host.linkRefusal(roomId, userId);
    if (why) res.status(403).json({ errcode: 'M_FORBIDDEN', error: why });
    return why !== undefined;
  };
  r.get('/networks', (_req, res) => {
    res.json([...host.networks.values()].map((n) => ({ id: n.identity.id, displayName: n.identity.displayName })));
  });
  r.get('/links', (req, res) => {
    const roomId = req.query['room_id'];
    if (typeof roomId !== 'string') { res.status(400).json({ errcode: 'M_MISSING_PARAM', error: 'room_id is required' }); return; }
    res.json(host.portals.forRoom(roomId).map((p) => ({ network: p.network, remoteChat: p.remoteChat, kind: p.kind })));
  });
  r.post('/link', async (req, res) => {
    const f = fields(req, res, ['room_id', 'network', 'remote_chat', 'user_id']);
    if (!f) return;
    // the secret says who the caller is (an integration manager); user_id says for whom, and that user must be allowed
    if (await refused(res, f['room_id']!, f['user_id']!)) return;
    try {
      const p = await host.link(f['room_id']!, f['network']!, f['remote_chat']!, f['user_id']!);
      res.json({ network: f['network'], remoteChat: p.remoteChat });
    } catch (err) {
      res.status(400).json({ errcode: 'M_UNKNOWN', error: (err as Error).message });
    }
  });
  r.post('/unlink', async (req, res) => {
    const f = fields(req, res, ['room_id', 'network', 'remote_chat', 'user_id']);
    if (!f) return;
    // the secret says who the caller is (an integration manager); user_id says for whom, and that user must be allowed
    if (await refused(res, f['room_id']!, f['user_id']!)) return;
    try {
      const ok = await host.unlink(f['room_id']!, f['network']!, f['remote_chat']!, f['user_id']!);
      res.status(ok ? 200 : 404).json(ok ? {} : { errcode: 'M_NOT_FOUND', error: 'no such link' });
    } catch (err) {
      res.status(400).json({ errcode: 'M_UNKNOWN', error: (err as Error).message });
    }
  });
  return r;
}
