export { withNativePlugins } from './plugin.js';
