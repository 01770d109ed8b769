/**
 * System actions behind an interface: systemctl on the box, a recording fake in tests
 * and in the demo (nobody wants the demo to reboot the laptop).
 */
import { execFile } from 'node:child_process';

export interface SystemActions {
  reboot(): Promise<void>;
  /** Restart only the agent's service (after a config change that needs it). */
  restartService(): Promise<void>;
}

export function systemctlActions(unit = 'commune-endpoint.service'): SystemActions {
  const run = (args: string[]): Promise<void> =>
    new Promise((resolve, reject) => execFile('systemctl', args, { timeout: 15_000 }, (err) => (err ? reject(new Error(`systemctl ${args.join(' ')}: ${err.message}`)) : resolve())));
  return { reboot: () => run(['reboot']), restartService: () => run(['restart', unit]) };
}

export class RecordingSystemActions implements SystemActions {
  readonly calls: string[] = [];
  async reboot(): Promise<void> {
    this.calls.push('reboot');
  }
  async restartService(): Promise<void> {
    this.calls.push('restartService');
  }
}
