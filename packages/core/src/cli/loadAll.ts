import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import YAML from 'yaml';
import { loadConfig } from '../config/load.js';
import type { TrestleConfig } from '../config/schema.js';
import type { NetworkModule } from '../network/contract.js';
import { loadNetworkModules } from '../network/load.js';

/** Load the config with the schemas of the networks it enables. */
export async function loadEverything(path: string): Promise<{ config: TrestleConfig; modules: Map<string, NetworkModule> }> {
  let rawNetworks: unknown;
  try {
    rawNetworks = (YAML.parse(readFileSync(path, 'utf8')) as Record<string, unknown> | null)?.['networks'];
  } catch {
    rawNetworks = undefined; // loadConfig below reports the file or syntax problem properly
  }
  const modules = await loadNetworkModules(rawNetworks, dirname(resolve(path)));
  const schemas = Object.fromEntries([...modules].filter(([, m]) => m.configSchema).map(([id, m]) => [id, m.configSchema!]));
  const config = loadConfig(path, schemas);
  return { config, modules };
}

