/**
 * Finding the network modules a config enables. `networks.<id>` names a built-in network
 * (`irc` → `@trestle/irc`, `discord` → `@trestle/discord`) or, with a `module` key, any module
 * whose default export is a {@link NetworkModule} (a path is resolved from the config file's folder).
 */
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import type { NetworkModule } from './contract.js';

export const BUILTIN_NETWORKS: Record<string, string> = {
  irc: '@trestle/irc',
  discord: '@trestle/discord',
};

/**
 * The keys every network section has besides its own: `enabled` (default true) and `module`
 * (for networks that are not built in). Networks build their schema with this.
 */
export function networkSection<T extends z.ZodRawShape>(shape: T) {
  return z.strictObject({
    enabled: z.boolean().default(true).describe('Set to false to keep the section but not run the network.'),
    module: z.string().optional().describe('Module path of a network that is not built in.'),
    ...shape,
  });
}

export class NetworkLoadError extends Error {
  constructor(message: string, options?: { cause?: unknown }) { super(message, options); this.name = 'NetworkLoadError'; }
}

/** The network ids and modules a raw config enables (sections with `enabled: false` are skipped). */
export async function loadNetworkModules(rawNetworks: unknown, configDir: string): Promise<Map<string, NetworkModule>> {
  const out = new Map<string, NetworkModule>();
  if (typeof rawNetworks !== 'object' || rawNetworks === null) return out;
  for (const [id, section] of Object.entries(rawNetworks as Record<string, unknown>)) {
    const s = (typeof section === 'object' && section !== null ? section : {}) as Record<string, unknown>;
    if (s['enabled'] === false) continue;
    const spec = typeof s['module'] === 'string' ? s['module'] : BUILTIN_NETWORKS[id];
    // An unknown name is left for config validation, which reports it with every other problem.
    if (!spec) continue;
    const target = spec.startsWith('.') || isAbsolute(spec) ? pathToFileURL(resolve(configDir, spec)).href : spec;
    let mod: { default?: NetworkModule };
    try {
      mod = (await import(target)) as { default?: NetworkModule };
    } catch (err) {
      throw new NetworkLoadError(`networks.${id}: cannot load module ${spec}: ${(err as Error).message}`, { cause: err });
    }
    if (!mod.default || typeof mod.default.create !== 'function') {
      throw new NetworkLoadError(`networks.${id}: module ${spec} does not export a network (default export with create())`);
    }
    out.set(id, mod.default);
  }
  return out;
}
