/**
 * `ep probe [--json]`: what this box has. The CLI only wires argv and stdout to this.
 * Exit codes: 0 after a probe (even one that found little: warnings are in the
 * output), 2 on a usage error.
 */
import { formatCapabilities, probe } from '../../gst-pipelines/index.js';
import type { ProbeDeps } from '../../gst-pipelines/index.js';

export const PROBE_USAGE = [
  'usage: ep probe [--json]',
  '  Lists GStreamer elements, board, cameras, displays and audio devices found on this box.',
  '  --json   print the Capabilities object as JSON instead of a summary',
].join('\n');

/** `argv` is what follows `probe` on the command line. `deps` is for tests. */
export async function probeCommand(
  argv: string[],
  out: (s: string) => void,
  deps: Partial<ProbeDeps> = {},
): Promise<number> {
  let json = false;
  for (const arg of argv) {
    if (arg === '--json') json = true;
    else if (arg === '-h' || arg === '--help') {
      out(PROBE_USAGE);
      return 0;
    } else {
      out(`ep probe: unknown argument ${JSON.stringify(arg)}\n${PROBE_USAGE}`);
      return 2;
    }
  }
  const caps = await probe(deps);
  out(json ? JSON.stringify(caps, null, 2) : formatCapabilities(caps));
  return 0;
}
