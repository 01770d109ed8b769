export { AdaptLoop } from './adapt-loop.js';
export { AUDIO_ONLY, SAMPLE_MS, ladderFor } from './adapt.js';
export { FAST_SAMPLE_MS, WATCH_SAMPLE_MS, collapseTrigger } from './collapse.js';
export type { FastSample } from './collapse.js';
export { fastReadingOf, srtLinkStats, srtStatsFromStructure } from './srt-stats.js';
export type { SrtStats } from './srt-stats.js';
