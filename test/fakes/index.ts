/**
 * The one kit of fakes every test uses: each stands in for a process or
 * hardware boundary, answers asynchronously like the real thing, records what it was
 * asked, and can be scripted to fail.
 */
export { FakeClock, settle } from './fake-clock.js';
export { FakeRunner, HANGS, TIMED_OUT } from './fake-runner.js';
export type { Answer, CommandResult, RunCommand } from './fake-runner.js';
export { HostTree, hostTrees, sysfs } from './host-tree.js';
export type { HostFiles } from './host-tree.js';
export { FakeSpawner, FakeWorker } from './fake-worker.js';
export { FakeLeds, FakeSystemActions } from './fake-host.js';
export type { SystemAction } from './fake-host.js';
export { FakeMedia } from './fake-media.js';
export { FakeMqttClient } from './fake-mqtt-client.js';
export { FakeGpiod, FakeInputLine, FakeOnoff, FakeOnoffGpio, FakeOutputLine } from './fake-gpio.js';
export type { FakeGpiodOptions } from './fake-gpio.js';
export { fieldView, piCaps } from './field-view.js';
