/** What test/harness/e2e.sh hands the e2e suites. A suite run without it fails loudly, never skips. */
import { readFileSync } from 'node:fs';
import YAML from 'yaml';

function need(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the e2e suites through test/harness/e2e.sh (npm test), which starts Synapse`);
  return v;
}

export const e2e = {
  get dir(): string { return need('TRESTLE_E2E_DIR'); },
  get config(): string { return need('TRESTLE_E2E_CONFIG'); },
  get synapseUrl(): string { return need('TRESTLE_E2E_SYNAPSE_URL'); },
  get sharedSecret(): string { return need('TRESTLE_E2E_SHARED_SECRET'); },
  registration(): { hs_token: string; as_token: string; url: string; sender_localpart: string } {
    const cfg = YAML.parse(readFileSync(this.config, 'utf8')) as { appservice: { registration: string } };
    return YAML.parse(readFileSync(cfg.appservice.registration, 'utf8')) as { hs_token: string; as_token: string; url: string; sender_localpart: string };
  },
};

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Poll until `fn` returns a truthy value. `what` may be a function: it then describes the state at the timeout. */
export async function until<T>(fn: () => T | Promise<T>, what: string | (() => string), timeoutMs = 30_000): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}`);
    await sleep(100);
  }
}

/**
 * One link's bridge info (MSC2346) among a room's state events: its content once the room holds it
 * as both `m.bridge` and `uk.half-shot.bridge` with the same content, else undefined.
 */
export function bridgeInfoIn(state: { type: string; state_key?: string; content: Record<string, unknown> }[], stateKey: string): Record<string, unknown> | undefined {
  const [a, b] = ['m.bridge', 'uk.half-shot.bridge'].map((t) => state.find((e) => e.type === t && e.state_key === stateKey)?.content);
  return a && b && JSON.stringify(a) === JSON.stringify(b) ? a : undefined;
}
