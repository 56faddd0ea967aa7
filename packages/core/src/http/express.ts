/**
 * express, loaded the first time a route needs it rather than when the bridge's modules load.
 * express and the ~50 modules it pulls in cost about 100 ms of a ~700 ms start on a 2-core machine,
 * and what the homeserver needs first (transactions, `/health`) is served without it (see
 * `transactionListener` and the bridge's request handler); the rest of the HTTP API (user and alias
 * queries, provisioning, media, metrics) is built on express when its first request comes.
 */
import { createRequire } from 'node:module';
import type expressModule from 'express';

let loaded: typeof expressModule | undefined;

export function express(): typeof expressModule {
  return (loaded ??= createRequire(import.meta.url)('express') as typeof expressModule);
}
