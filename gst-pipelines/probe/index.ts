export { execRunCommand, formatCapabilities, probe } from './probe.js';
export type { ProbeDeps } from './probe.js';
