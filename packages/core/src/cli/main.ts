#!/usr/bin/env node
/**
 * `trestle` — the command line.
 *   trestle generate-registration --config FILE [--output FILE]
 *   trestle check-config --config FILE
 *   trestle start --config FILE
 * Errors a user can fix (bad config, missing registration, unreachable homeserver) are printed as
 * one clear message and exit 1, never as a stack trace.
 */
import { TrestleBridge } from '../bridge/bridge.js';
import { ConfigError } from '../config/load.js';
import { buildRegistration, readRegistration, RegistrationError, writeRegistration } from '../matrix/registration.js';
import type { NetworkConnector } from '../network/contract.js';
import { NetworkLoadError } from '../network/load.js';
import { loadEverything } from './loadAll.js';
import { createLogger } from '../util/log.js';

const USAGE = `Usage:
  trestle generate-registration --config FILE [--output FILE]
  trestle check-config --config FILE
  trestle start --config FILE`;

function parseArgs(argv: string[]): { cmd?: string; flags: Record<string, string> } {
  const [cmd, ...rest] = argv;
  const flags: Record<string, string> = {};
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument "${a}"`);
    const eq = a.indexOf('=');
    if (eq > 0) { flags[a.slice(2, eq)] = a.slice(eq + 1); continue; }
    const v = rest[i + 1];
    if (v === undefined || v.startsWith('--')) throw new UsageError(`${a} needs a value`);
    flags[a.slice(2)] = v;
    i++;
  }
  return { ...(cmd !== undefined ? { cmd } : {}), flags };
}

class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  const { cmd, flags } = parseArgs(argv);
  if (!cmd || cmd === 'help' || cmd === '--help') { process.stdout.write(USAGE + '\n'); return cmd ? 0 : 1; }
  const configPath = flags['config'];
  if (!configPath) throw new UsageError('--config FILE is required');
  const { config, modules } = await loadEverything(configPath);

  switch (cmd) {
    case 'check-config':
      process.stdout.write(`${configPath}: OK (networks: ${[...modules.keys()].join(', ') || 'none'})\n`);
      return 0;
    case 'generate-registration': {
      const output = flags['output'] ?? config.appservice.registration;
      const networks = [...modules].map(([id, m]) => m.create((config.networks as Record<string, unknown>)[id], id).identity);
      const url = config.appservice.url ?? `http://${config.appservice.bindAddress}:${config.appservice.port}`;
      const reg = await buildRegistration({ id: config.appservice.id, url, botLocalpart: config.appservice.botLocalpart, domain: config.homeserver.domain, networks });
      writeRegistration(output, reg);
      process.stdout.write(`Wrote ${output}. Add it to the homeserver's app_service_config_files and restart the homeserver.\n`);
      return 0;
    }
    case 'start': {
      const log = createLogger({ level: config.logging.level, format: config.logging.format });
      readRegistration(config.appservice.registration); // fail early with a clear message
      const networks: NetworkConnector[] = [...modules].map(([id, m]) => m.create((config.networks as Record<string, unknown>)[id], id));
      const bridge = new TrestleBridge(config, networks, { log });
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) { log.warn('second signal: exiting now', { signal }); process.exit(1); }
        stopping = true;
        log.info('signal received; shutting down', { signal });
        bridge.stop().then(() => process.exit(0), (err: unknown) => { log.error('shutdown failed', { err: err as Error }); process.exit(1); });
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
      try {
        await bridge.start();
      } catch (err) {
        await bridge.stop().catch(() => undefined);
        throw err;
      }
      return -1; // keep running
    }
    default:
      throw new UsageError(`unknown command "${cmd}"`);
  }
}

main(process.argv.slice(2)).then(
  (code) => { if (code >= 0) process.exit(code); },
  (err: unknown) => {
    if (err instanceof UsageError) process.stderr.write(`trestle: ${err.message}\n${USAGE}\n`);
    else if (err instanceof ConfigError || err instanceof RegistrationError || err instanceof NetworkLoadError) process.stderr.write(`trestle: ${err.message}\n`);
    else if (err instanceof Error && /ECONNREFUSED|fetch failed|ENOTFOUND/.test(`${err.message} ${String((err as { cause?: unknown }).cause)}`)) {
      process.stderr.write(`trestle: cannot reach the homeserver: ${err.message}\n`);
    } else process.stderr.write(`trestle: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
