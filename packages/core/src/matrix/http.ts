/**
 * Requests to the homeserver on node:http(s) with a keep-alive agent. The bridge sends one request
 * per bridged message, so this is a hot path: fetch (undici through the web-streams layer) costs
 * several times the CPU of a plain request here, for nothing the bridge needs.
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

/** Give up on a request that has not been answered in this time (the caller reports or retries). */
const TIMEOUT_MS = 60_000;

export class HomeserverHttp {
  private readonly url: URL;
  private readonly agent: HttpAgent;
  private readonly send_: typeof httpRequest;
  private readonly auth: string;

  constructor(baseUrl: string, token: string) {
    this.url = new URL(baseUrl.replace(/\/+$/, ''));
    const tls = this.url.protocol === 'https:';
    this.agent = tls ? new HttpsAgent({ keepAlive: true, maxSockets: 64 }) : new HttpAgent({ keepAlive: true, maxSockets: 64 });
    this.send_ = tls ? httpsRequest : httpRequest;
    this.auth = `Bearer ${token}`;
  }

  /** One request; resolves with the status and body text whatever the status, rejects on a network error or timeout. */
  send(method: string, pathAndQuery: string, body?: string | Buffer, contentType = 'application/json'): Promise<{ status: number; text: string }> {
    const prefix = this.url.pathname === '/' ? '' : this.url.pathname;
    const headers: Record<string, string | number> = { authorization: this.auth };
    if (body !== undefined) { headers['content-type'] = contentType; headers['content-length'] = Buffer.byteLength(body); }
    return new Promise((resolve, reject) => {
      const req = this.send_({
        protocol: this.url.protocol, hostname: this.url.hostname, port: this.url.port, agent: this.agent,
        method, path: prefix + pathAndQuery, headers, timeout: TIMEOUT_MS,
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`no answer in ${TIMEOUT_MS / 1000} s`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  close(): void { this.agent.destroy(); }
}
