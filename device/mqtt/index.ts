export { CommandRouter } from './command-router.js';
export { MqttSession } from './session.js';
