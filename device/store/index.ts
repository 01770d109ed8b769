export { CommandLedger, standInMessage } from './command-ledger.js';
export type { StandInFacts } from './command-ledger.js';
export { EventOutbox } from './outbox.js';
