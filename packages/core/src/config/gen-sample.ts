/**
 * Writes `config/trestle.sample.yaml` from the config schemas, or with `--check` fails when the
 * committed file differs from what the schemas generate (run in CI, so the sample cannot drift).
 *
 *   node packages/core/dist/config/gen-sample.js [--check]    (or `npm run gen:config`)
 *
 * Paths are resolved from the current directory, which must be the repository root.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { renderSampleConfig } from './sample.js';
import type { NetworkSchemas } from './schema.js';

/** Where the sample lives, relative to the repository root. */
export const SAMPLE_CONFIG_PATH = 'config/trestle.sample.yaml';

const HEADER = [
  '# Trestle sample configuration.',
  '#',
  '# GENERATED from the schemas in packages/core/src/config/ by',
  '#   npm run gen:config   (node packages/core/dist/config/gen-sample.js)',
  '# Do not edit by hand: CI runs it with --check and fails when this file drifts.',
  '# Copy it to trestle.yaml and fill in the required keys to configure a bridge.',
  '',
  '',
].join('\n');

/** The full contents of the sample file: the generated-file header, then the sample itself. */
export function sampleFileContents(networkSchemas: NetworkSchemas = {}): string {
  return HEADER + renderSampleConfig(networkSchemas);
}

export interface GenerateSampleOptions {
  /** Repository root the sample path is resolved from; defaults to `process.cwd()`. */
  root?: string;
  /** Compare with the file on disk instead of writing it. */
  check?: boolean;
}

export interface GenerateSampleResult {
  /** Absolute path of the sample file. */
  path: string;
  /** Whether the file on disk differed from the generated sample (and, unless checking, was rewritten). */
  changed: boolean;
}

/**
 * Generates the sample config (with sections for `networkSchemas`) and writes it, or only
 * compares it with the file on disk when `options.check` is set.
 */
export function generateSample(
  networkSchemas: NetworkSchemas = {},
  options: GenerateSampleOptions = {},
): GenerateSampleResult {
  const path = resolve(options.root ?? process.cwd(), SAMPLE_CONFIG_PATH);
  const expected = sampleFileContents(networkSchemas);
  const changed = readIfExists(path)?.replace(/\r\n/g, '\n') !== expected;
  if (changed && options.check !== true) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, expected);
  }
  return { path, changed };
}

function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * The config schemas of the built-in networks that are installed (`@trestle/irc`, `@trestle/discord`),
 * loaded by package name so core keeps no static dependency on them.
 */
export async function builtinNetworkSchemas(): Promise<NetworkSchemas> {
  const { BUILTIN_NETWORKS } = await import('../network/load.js');
  const out: NetworkSchemas = {};
  for (const [id, pkg] of Object.entries(BUILTIN_NETWORKS)) {
    let mod: { default?: { configSchema?: NetworkSchemas[string] } };
    try {
      mod = (await import(pkg)) as typeof mod;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String((err as Error).message).includes(pkg)) continue;
      throw err;
    }
    if (mod.default?.configSchema) out[id] = mod.default.configSchema;
  }
  return out;
}

async function main(args: readonly string[]): Promise<number> {
  const unknown = args.filter((arg) => arg !== '--check');
  if (unknown.length > 0) {
    console.error(`gen-sample: unknown argument ${unknown.join(' ')}; usage: gen-sample.js [--check]`);
    return 2;
  }
  const check = args.includes('--check');
  const { changed } = generateSample(await builtinNetworkSchemas(), { check });
  if (check && changed) {
    console.error(
      `${SAMPLE_CONFIG_PATH} is missing or has drifted from the config schemas: ` +
        'run `npm run gen:config` and commit the result.',
    );
    return 1;
  }
  console.log(`${SAMPLE_CONFIG_PATH} ${check ? 'is up to date' : changed ? 'written' : 'already up to date'}.`);
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err: unknown) => {
    console.error(`gen-sample: ${(err as Error).message}`);
    process.exitCode = 1;
  });
}
