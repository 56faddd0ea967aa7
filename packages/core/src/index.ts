/** @trestle/core — the public entry. Networks import from here, never from src/ paths. */
export * from './network/contract.js';
export { networkSection, BUILTIN_NETWORKS, loadNetworkModules } from './network/load.js';
export { TrestleBridge, type BridgeOptions, TRESTLE_VERSION } from './bridge/bridge.js';
export { escapeLocalpart } from './bridge/ghosts.js';
export { OrderedQueues, type QueuePolicy } from './bridge/queue.js';
export { stripReplyFallback } from './bridge/fromMatrix.js';
export { GhostPresences, type GhostPresence, type GhostPresencesDeps } from './bridge/presence.js';
export { KeyedSerial } from './util/keyedSerial.js';
export { escapeRegex } from './util/regex.js';
export { durationWords } from './util/words.js';
export { createLogger, silentLogger, type Logger, type LogLevel } from './util/log.js';
export { openDatabase, migrate, prepared, schemaVersion, MigrationError, type Db } from './db/database.js';
export { WorkQueueStore } from './db/workQueue.js';
export { buildRegistration, writeRegistration, readRegistration, type RegistrationFile } from './matrix/registration.js';
export { deterministicTxnId } from './matrix/client.js';
export { loadEverything } from './cli/loadAll.js';
export * from './config/index.js';
