export { CONFIG_FILE, KEEP_ON_RESET, RECORD_FILE, STATUS_FILE, applyProvision, lookupUser, readRecord, readStatus, wipeDataDir } from './apply.js';
export type { Owner, ProvisionRecord, ProvisionStatus, ProvisionTarget, Receipt } from './apply.js';
export { DEFAULT_SEARCH, REACHED_FILE, findProvisionFile, finishProvisioning, noteBrokerReached, provisionFromBoot, provisionFromFile, unprovisionedReason } from './boot.js';
export type { ProvisionContext, ProvisionOutcome } from './boot.js';
export { deriveDeviceId } from './device-id.js';
export { GPIO_PINS_SCHEMA, PROVISION_FILE_NAME, RECEIPT_FILE_NAME, ProvisionFileError, decodeProvisionFile, isProvisionFileError, provisionFileSchema } from './provision-file.js';
export type { ProvisionPlan, RedactedPlan } from './provision-file.js';
