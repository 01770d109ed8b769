export * from './schemas.js';
export * from './topics.js';
export * from './validate.js';
export type * from './types.js';
export * from './command-id.js';
export * from './response-target.js';
