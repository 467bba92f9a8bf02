export {
  checkConsistency,
  dropUndefined,
  loadConfig,
  mergeConfig,
  parseConfigText,
  parseTomlText,
  resolveInDataDir,
  showValue,
  validateFragment,
  type ConfigFragment,
  type LoadConfigOptions,
  type ParseConfigOptions,
} from "./config.js";
export { defaultConfig, fileDefaults, NETWORK_DEFAULTS, type NetworkDefaults } from "./defaults.js";
export { ConfigError, type ConfigErrorCode } from "./errors.js";
export { checkHostPort, checkPeerFilter, formatHostPort, parseHostPort, type HostPort } from "./hostPort.js";
export {
  ConfigFragmentSchema,
  MASTERNODE_TIERS,
  NETWORK_NAMES,
  NodeConfigSchema,
  SECTION_NAMES,
  MAX_SYNC_BATCH_SIZE_CAP,
  type ConfigOverrides,
  type ConsensusSection,
  type LoggingSection,
  type MasternodeSection,
  type MasternodeTier,
  type NetworkName,
  type NetworkSection,
  type NodeConfig,
  type NodeSection,
  type RpcSection,
  type SectionName,
  type SyncSection,
} from "./schema.js";
export { renderConfigTemplate } from "./template.js";
