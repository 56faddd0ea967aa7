/** @trestle/irc — the IRC network for Trestle. */
import type { NetworkModule } from '@trestle/core';
import { ircConfigSchema } from './config.js';
import { IrcNetwork } from './network.js';

export { IrcNetwork, describeEdit } from './network.js';
export { ircConfigSchema, type IrcConfig, type IrcServerConfig } from './config.js';
export * from './ids.js';
export * from './nicks.js';
export * from './convert/index.js';
export { PasswordBox } from './store.js';
export type { IrcServer } from './server.js';

const ircModule: NetworkModule = {
  id: 'irc',
  configSchema: ircConfigSchema,
  create: (config, id) => new IrcNetwork(id, ircConfigSchema.parse(config)),
};

export default ircModule;
