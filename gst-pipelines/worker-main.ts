/**
 * Entry point of a media worker process (forked by the supervisor with an IPC channel).
 * pollBus and every pending appsink pull hold a libuv threadpool thread for good, so
 * the pool must be larger than the default 4 before anything uses it; the supervisor
 * sets UV_THREADPOOL_SIZE in our environment, and we make sure here too.
 */
import { MediaWorker } from './worker.js';
import { isToWorker } from './worker-protocol.js';

if (!process.env.UV_THREADPOOL_SIZE) process.env.UV_THREADPOOL_SIZE = '16';

if (!process.send) {
  console.error('worker-main: must be started by the media supervisor with an IPC channel');
  process.exit(2);
}

const worker = new MediaWorker({
  send: (msg) => {
    if (process.connected) process.send?.(msg);
  },
  onMessage: (cb) => {
    process.on('message', (m: unknown) => {
      if (isToWorker(m)) cb(m);
    });
  },
  exit: (code) => {
    // Let the IPC channel flush the last message before leaving.
    setImmediate(() => process.exit(code));
  },
});
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => worker.stop());
worker.attach();
