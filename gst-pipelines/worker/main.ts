/**
 * Entry point of a media worker process (forked by the supervisor with an IPC channel).
 * pollBus and every pending appsink pull hold a libuv threadpool thread for good, so
 * the pool must be larger than the default 4 before anything uses it; the supervisor
 * sets UV_THREADPOOL_SIZE in our environment, and we make sure here too.
 */
import { Worker } from 'node:worker_threads';
import { MediaWorker } from './media-worker.js';
import { isToWorker } from './protocol.js';

if (!process.env.UV_THREADPOOL_SIZE) process.env.UV_THREADPOOL_SIZE = '16';

if (!process.send) {
  console.error('worker/main: must be started by the media supervisor with an IPC channel');
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
  exit: () => {
    // Let the IPC channel flush the last message, then leave without running exit-time
    // destructors: libsrt's global state can hang process.exit() for good while its
    // threads wind down (seen here: workers that outlived their agent). The pipeline is
    // already in NULL, so the SRT peers were told the connection closed.
    setImmediate(() => process.kill(process.pid, 'SIGKILL'));
  },
});
process.on('disconnect', () => process.kill(process.pid, 'SIGKILL'));

// Orphan guard: a GStreamer call can block the main thread (a state change waiting on a
// stuck element), and then 'disconnect' never runs. If the agent dies (SIGKILL, OOM), the
// worker must still end, so none ever outlives its agent holding the camera or the
// display (seen here). Started through setpriv (worker-process.ts), the kernel kills us
// with the agent (parent-death signal), and we only check it was not gone already.
// Otherwise a thread of our own watches the parent pid.
const agentPid = Number(process.env.EP_AGENT_PID);
if (agentPid > 0) {
  if (process.ppid !== agentPid) process.kill(process.pid, 'SIGKILL');
} else {
  new Worker(
    `const { workerData } = require('node:worker_threads');
     setInterval(() => { if (process.ppid !== workerData.ppid) process.kill(process.pid, 'SIGKILL'); }, 500);`,
    { eval: true, workerData: { ppid: process.ppid } },
  ).unref();
}
process.on('SIGTERM', () => worker.stop());
worker.attach();
