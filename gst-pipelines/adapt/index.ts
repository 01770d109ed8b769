export { AdaptLoop } from './adapt-loop.js';
export { SAMPLE_MS } from './constants.js';
export { AUDIO_ONLY, ladderFor } from './ladder.js';
export { FAST_SAMPLE_MS, WATCH_SAMPLE_MS, collapseTrigger } from './collapse.js';
export type { FastSample } from './collapse.js';
export { fastReadingOf, srtLinkStats, srtStatsFromStructure } from './srt-stats.js';
export type { SrtStats } from './srt-stats.js';
