export { CommandLedger } from './command-ledger.js';
export { EventOutbox } from './outbox.js';
