/** @trestle/discord — the Discord network for Trestle. */
import type { NetworkModule } from '@trestle/core';
import { discordConfigSchema } from './config.js';
import { DiscordNetwork } from './network.js';

export { DiscordNetwork, toDeliveryError } from './network.js';
export { discordFailure, type DiscordFailure } from './errors.js';
export { discordConfigSchema, type DiscordConfig } from './config.js';
export { DiscordLoginError, classifyLoginError } from './client.js';
export { fillTemplate, isRealEdit, tooOld } from './fromDiscord.js';
export * from './ids.js';
export * from './convert/index.js';

const discordModule: NetworkModule = {
  id: 'discord',
  configSchema: discordConfigSchema,
  create: (config, id) => new DiscordNetwork(id, discordConfigSchema.parse(config)),
};

export default discordModule;
