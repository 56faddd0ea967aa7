// The Matrix client layer's sends against a stand-in homeserver (node:http on 127.0.0.1): a 2xx
// answer without an event_id (an empty or HTML body from a proxy in front of the homeserver) is an
// error to retry, not a send that happened; with one, the id is returned.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MatrixClientLayer, MatrixError } from '../../../packages/core/src/matrix/client.js';
import type { RegistrationFile } from '../../../packages/core/src/matrix/registration.js';
import { silentLogger } from '../../../packages/core/src/util/log.js';

let server: Server | undefined;
let client: MatrixClientLayer | undefined;
afterEach(() => { client?.close(); server?.close(); });

/** A homeserver that answers every request with `status` and `body`. */
async function homeserver(status: number, body: string, type = 'application/json'): Promise<MatrixClientLayer> {
  server = createServer((req, res) => { req.resume(); req.on('end', () => res.writeHead(status, { 'content-type': type }).end(body)); });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  const registration = { as_token: 'as', hs_token: 'hs', sender_localpart: 'bot' } as RegistrationFile;
  client = new MatrixClientLayer({ homeserverUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, domain: 'hs', registration, log: silentLogger });
  return client;
}

describe('sending an event', () => {
  it('returns the event id the homeserver gives', async () => {
    const c = await homeserver(200, '{"event_id":"$abc"}');
    expect(await c.sendWithTxn('@ghost:hs', '!r:hs', 'm.room.message', { body: 'x' }, 't1')).toBe('$abc');
    expect(await c.redact('@ghost:hs', '!r:hs', '$abc', 't2')).toBe('$abc');
  });

  it.each<[string, number, string, string]>([
    ['an empty 200', 200, '', 'application/json'],
    ['an HTML 200 from a proxy', 200, '<html>ok</html>', 'text/html'],
    ['a 204', 204, '', 'application/json'],
    ['JSON without event_id', 200, '{}', 'application/json'],
  ])('throws, to be retried, on %s', async (_name, status, body, type) => {
    const c = await homeserver(status, body, type);
    const sent = c.sendWithTxn('@ghost:hs', '!r:hs', 'm.room.message', { body: 'x' }, 't1');
    await expect(sent).rejects.toThrow(/without its event_id/);
    await expect(sent).rejects.toBeInstanceOf(MatrixError);
    expect(((await sent.catch((e: unknown) => e)) as MatrixError).permanent).toBe(false);
  });
});
