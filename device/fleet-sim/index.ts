export { SimBox, simCaps } from './box.js';
export type { SimBoxOptions } from './box.js';
export { SimBroker, freePort } from './broker.js';
export { MAX_SIM_BOXES, SimFleet, inBatches, makeFleetDir, simGroup, simId } from './fleet.js';
export type { SimFleetOptions } from './fleet.js';
export { peakPerSecond, percentile, runFleetSim } from './measure.js';
export type { FleetSimOptions, FleetSimResult } from './measure.js';
export { simSpawner } from './worker.js';
