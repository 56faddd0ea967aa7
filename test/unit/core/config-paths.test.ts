// Relative file paths in the config resolve against the working directory: the reference must say so.
import { describe, expect, it } from 'vitest';
import { renderConfigReference, renderSampleConfig } from '../../../packages/core/src/config/index.js';
import { ircConfigSchema } from '../../../packages/irc/src/config.js';

const CWD_NOTE = 'A relative path is resolved against the working directory the bridge is started in';

/** The description column of `key`'s row in the config reference. */
function describedAs(reference: string, key: string): string {
  const row = reference.split('\n').find((line) => line.startsWith(`| \`${key}\` |`));
  if (row === undefined) throw new Error(`no row for ${key} in the config reference`);
  return row.split(' | ').at(-1) ?? '';
}

describe('relative paths in the config', () => {
  const reference = renderConfigReference({ irc: ircConfigSchema });

  it('say that they resolve against the working directory, for every file the bridge opens', () => {
    for (const key of ['database.path', 'appservice.registration', 'networks.irc.passwordKeyFile', 'networks.irc.servers.<name>.tlsCa']) {
      expect(describedAs(reference, key), key).toContain(CWD_NOTE);
    }
    expect(renderSampleConfig({ irc: ircConfigSchema })).toContain('# Path of the SQLite database file. A relative path is resolved');
  });

  it('say that a module path, unlike them, resolves against the config file\'s folder', () => {
    expect(describedAs(reference, 'networks')).toContain('a relative module path is resolved against the folder of this file');
  });
});
