// Permission lookups by user id and server name must find only what the config says.
import YAML from 'yaml';
import { describe, expect, it } from 'vitest';
import { TrestleBridge } from '../../../packages/core/src/bridge/bridge.js';
import { parseConfig } from '../../../packages/core/src/config/index.js';
import { silentLogger } from '../../../packages/core/src/util/log.js';

const minimal = { homeserver: { url: 'http://127.0.0.1:8008', domain: 'example.org' } };

describe('permissions', () => {
  it('finds nothing under keys nobody configured, such as Object.prototype\'s methods', () => {
    for (const permissions of [undefined, { 'example.org': 'user', '@admin:example.org': 'admin' }]) {
      const parsed = parseConfig({ ...minimal, ...(permissions ? { permissions } : {}) }).permissions as Record<string, unknown>;
      for (const key of ['constructor', 'toString', 'hasOwnProperty', '__proto__', 'valueOf']) expect(parsed[key]).toBeUndefined();
    }
  });

  it('gives a user on a server named like an Object.prototype method no permission', () => {
    const config = parseConfig({ ...minimal, permissions: { 'example.org': 'user', '@admin:example.org': 'admin' } });
    const bridge = new TrestleBridge(config, [], { log: silentLogger });
    expect(bridge.permission('@eve:constructor')).toBe('none');
    expect(bridge.permission('@eve:toString')).toBe('none');
    expect(bridge.permission('@alice:example.org')).toBe('user');
    expect(bridge.permission('@admin:example.org')).toBe('admin');
  });

  it('still serialises and compares as the mapping it was written as', () => {
    const written = { '*': 'user', '@admin:example.org': 'admin' } as const;
    const { permissions } = parseConfig({ ...minimal, permissions: written });
    expect(permissions).toEqual(written);
    expect(JSON.parse(JSON.stringify(permissions))).toEqual(written);
    expect(YAML.parse(YAML.stringify(permissions))).toEqual(written);
    expect(Object.entries(permissions)).toEqual(Object.entries(written));
    expect({ ...permissions }).toEqual(written);
  });
});
