export { LocalHub } from './local-hub.js';
export { runLoopback, savePictures } from './loopback.js';
