/** The configuration system: schemas, loading and validation, and the generated sample. */
export * from './schema.js';
export { ConfigError, loadConfig, parseConfig } from './load.js';
export { renderConfigReference, renderSampleConfig } from './sample.js';
export {
  generateSample,
  sampleFileContents,
  SAMPLE_CONFIG_PATH,
  type GenerateSampleOptions,
  type GenerateSampleResult,
} from './gen-sample.js';
