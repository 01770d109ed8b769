/**
 * System actions behind an interface: systemctl on the box, a log-only dry run for the
 * demo (nobody wants the demo to reboot the laptop); test/fakes has the scriptable fake.
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

/** A dry run (the demo): says what it would do instead of doing it. */
export function logOnlySystemActions(log: (line: string) => void): SystemActions {
  return {
    async reboot() {
      log('dry run: would reboot the box');
    },
    async restartService() {
      log('dry run: would restart the agent service');
    },
  };
}
