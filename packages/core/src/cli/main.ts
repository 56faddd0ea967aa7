#!/usr/bin/env node
/**
 * `trestle` — the command line.
 *   trestle generate-registration --config FILE [--output FILE]
 *   trestle check-config --config FILE
 *   trestle start --config FILE
 * Errors a user can fix (bad config, a missing or broken registration, a database of a newer
 * Trestle, a port that cannot be bound, an unreachable homeserver) are printed as one clear line
 * and exit 1, never as a stack trace; anything else is a bug, printed with its stack.
 */
import { existsSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { TrestleBridge } from '../bridge/bridge.js';
import { ConfigError } from '../config/load.js';
import { appserviceUrl, type TrestleConfig } from '../config/schema.js';
import { MigrationError } from '../db/database.js';
import { MatrixError } from '../matrix/client.js';
import { buildRegistration, readRegistration, RegistrationError, writeRegistration } from '../matrix/registration.js';
import type { NetworkConnector, NetworkModule } from '../network/contract.js';
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

/** An error a user can fix, already put as the one line to print (`cause` is the original). */
class UserFixableError extends Error {}

/**
 * Runs the command in `argv` (without `node` and the script) and resolves to the exit code, or to
 * -1 for `start`, which keeps running. Rejects with what went wrong; an error a user can fix comes
 * as a {@link UserFixableError} when the config was loaded, so its line can name config keys.
 */
export async function main(argv: string[]): Promise<number> {
  const { cmd, flags } = parseArgs(argv);
  if (!cmd || cmd === 'help' || cmd === '--help') { process.stdout.write(USAGE + '\n'); return cmd ? 0 : 1; }
  const configPath = flags['config'];
  if (!configPath) throw new UsageError('--config FILE is required');
  const { config, modules } = await loadEverything(configPath);
  try {
    return await run(cmd, flags, configPath, config, modules);
  } catch (err) {
    const line = userFixableProblem(err, config);
    throw line === undefined ? err : new UserFixableError(line, { cause: err });
  }
}

async function run(
  cmd: string, flags: Record<string, string>, configPath: string, config: TrestleConfig,
  modules: Map<string, NetworkModule>,
): Promise<number> {
  switch (cmd) {
    case 'check-config':
      process.stdout.write(`${configPath}: OK (networks: ${[...modules.keys()].join(', ') || 'none'})\n`);
      return 0;
    case 'generate-registration': {
      const output = flags['output'] ?? config.appservice.registration;
      const networks = [...modules].map(([id, m]) => m.create((config.networks as Record<string, unknown>)[id], id).identity);
      // appserviceUrl brackets an IPv6 bindAddress (http://[::]:9000; by hand it was http://:::9000)
      const url = appserviceUrl(config.appservice);
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
      const onTerm = (): void => stop('SIGTERM');
      const onInt = (): void => stop('SIGINT');
      process.on('SIGTERM', onTerm);
      process.on('SIGINT', onInt);
      try {
        await bridge.start();
      } catch (err) {
        // the caller reports the error and exits; until then a signal is no longer this bridge's to handle
        process.off('SIGTERM', onTerm);
        process.off('SIGINT', onInt);
        await bridge.stop().catch(() => undefined);
        throw err;
      }
      return -1; // keep running
    }
    default:
      throw new UsageError(`unknown command "${cmd}"`);
  }
}

/** The `code` and `syscall` of a Node.js system error (a failed listen, a failed DNS lookup), if `err` is one. */
function systemError(err: unknown): { code: string; syscall: string; hostname?: string } | undefined {
  const e = err as { code?: unknown; syscall?: unknown; hostname?: unknown } | null;
  if (!(err instanceof Error) || typeof e?.code !== 'string' || typeof e.syscall !== 'string') return undefined;
  return { code: e.code, syscall: e.syscall, ...(typeof e.hostname === 'string' ? { hostname: e.hostname } : {}) };
}

/**
 * The one line to print for an error the user can fix (a wrong config value, a broken file, a busy
 * port, the homeserver away), or undefined for anything else: a bug, whose stack is worth printing.
 * `config`, once loaded, lets the line name the config key to change and its value.
 */
export function userFixableProblem(err: unknown, config?: TrestleConfig): string | undefined {
  if (err instanceof UserFixableError) return err.message;
  if (err instanceof ConfigError || err instanceof RegistrationError || err instanceof NetworkLoadError) return err.message;
  if (err instanceof MigrationError) {
    // a database left by a newer Trestle, or a migration that failed: either way the file is the thing to look at
    return `${config ? `${config.database.path} (database.path)` : 'the database'}: ${err.message}`;
  }
  const sys = systemError(err);
  if (sys && config) {
    const { bindAddress, port } = config.appservice;
    const at = `appservice.bindAddress ${bindAddress}, appservice.port ${port}`;
    if (sys.syscall === 'listen') {
      switch (sys.code) {
        case 'EADDRINUSE':
          return `cannot listen on ${at}: the port is in use (another Trestle still running, or another program); ` +
            'stop it, or choose another appservice.port and generate the registration again';
        case 'EACCES':
          return `cannot listen on ${at}: permission denied (ports below 1024 need privileges); ` +
            'choose an appservice.port of 1024 or more and generate the registration again';
        case 'EADDRNOTAVAIL':
          return `cannot listen on ${at}: ${bindAddress} is not an address of this host; ` +
            'set appservice.bindAddress to one of its addresses (127.0.0.1 with the homeserver on this host, 0.0.0.0 for all)';
      }
    }
    // the listener looks a host name given as bindAddress up first; the homeserver's failures come as MatrixError
    if (sys.syscall === 'getaddrinfo' && sys.hostname === bindAddress) {
      return `cannot listen on ${at}: ${bindAddress} is not a host name this host can resolve (${sys.code}); ` +
        'set appservice.bindAddress to an address of this host (127.0.0.1, 0.0.0.0, ::) or a name that resolves to one';
    }
  }
  // only the homeserver's client says "unreachable": not a DNS or connection failure of anything else
  if (err instanceof MatrixError && err.unreachable) {
    return `${err.message}${config ? ` (homeserver.url ${config.homeserver.url}: is the homeserver running, and is the URL right?)` : ''}`;
  }
  return undefined;
}

/**
 * Whether node was started with this file (`trestle …`, `node …/cli/main.js`), rather than this
 * module being imported (by a test). Symlinks are followed: npm starts `trestle` through one. A
 * script node found that is not on disk as named (an extension left out) counts as this file, so
 * the command line can only fail to run when another existing script was started.
 */
function startedAsProgram(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  const started = [script, `${script}.js`].find((path) => existsSync(path));
  if (started === undefined) return true;
  return realpathSync(started) === realpathSync(fileURLToPath(import.meta.url));
}

if (startedAsProgram()) {
  main(process.argv.slice(2)).then(
    (code) => { if (code >= 0) process.exit(code); },
    (err: unknown) => {
      const problem = err instanceof UsageError ? undefined : userFixableProblem(err);
      if (err instanceof UsageError) process.stderr.write(`trestle: ${err.message}\n${USAGE}\n`);
      else if (problem !== undefined) process.stderr.write(`trestle: ${problem}\n`);
      else process.stderr.write(`trestle: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
