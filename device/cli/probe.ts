/**
 * `ep probe [--json] [--config FILE]`: what this box has, and how its LEDs and button are
 * driven (with FILE, the wiring the agent config names). The CLI only wires argv and stdout
 * to this. Exit codes: 0 after a probe (even one that found little: warnings are in the
 * output), 2 on a usage error, 1 when the config cannot be read.
 */
import { formatCapabilities, probe } from '../../gst-pipelines/index.js';
import type { ProbeDeps } from '../../gst-pipelines/index.js';
import { hostPaths, silentLogger, systemClock } from '../../lib/index.js';
import { loadConfig } from '../config.js';
import { createContract } from '../contract/index.js';
import { fieldHardwareConfig, formatFieldHardware, probeFieldHardware, type FieldHardwareDeps, type FieldHardwareReport } from '../field/index.js';

export const PROBE_USAGE = [
  'usage: ep probe [--json] [--config FILE]',
  '  Lists GStreamer elements, board, cameras, displays and audio devices found on this box,',
  '  and which driver the status LEDs and the button get (and why).',
  '  --json          print the Capabilities object (with `field`: the LED/button report) as JSON',
  '  --config FILE   the agent config, for its GPIO lines and LED names (without: the board LED only)',
].join('\n');

/**
 * The LED/button section: the report (JSON) and its text for the wiring in the agent config
 * FILE (null: none given). device/field's `fieldProbe`; ep.ts passes it in.
 */
export type FieldProbe = (configFile: string | null) => Promise<{ json: unknown; text: string }>;

/**
 * `argv` is what follows `probe` on the command line. `deps` is for tests. Without `field`
 * there is no LED/button section (and `--config` has nothing to configure).
 */
export async function probeCommand(
  argv: string[],
  out: (s: string) => void,
  deps: Partial<ProbeDeps> = {},
  field: FieldProbe | null = null,
): Promise<number> {
  let json = false;
  let configFile: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--json') json = true;
    else if (arg === '--config' && i + 1 < argv.length) configFile = argv[++i]!;
    else if (arg === '-h' || arg === '--help') {
      out(PROBE_USAGE);
      return 0;
    } else {
      out(`ep probe: unknown argument ${JSON.stringify(arg)}\n${PROBE_USAGE}`);
      return 2;
    }
  }
  let section: { json: unknown; text: string } | null = null;
  if (field) {
    try {
      section = await field(configFile);
    } catch (e) {
      out(`ep probe: ${configFile ?? 'LEDs and button'}: ${(e as Error).message}`);
      return 1;
    }
  }
  const caps = await probe(deps);
  if (json) out(JSON.stringify(section ? { ...caps, field: section.json } : caps, null, 2));
  else out(section ? `${formatCapabilities(caps)}\n${section.text}` : formatCapabilities(caps));
  return 0;
}

/**
 * `ep probe`'s LED and button section: the wiring from the agent config FILE when given
 * (else the board LED only), the report and its text. Throws when the config cannot be read.
 */
export async function fieldProbe(configFile: string | null, deps?: FieldHardwareDeps): Promise<{ json: FieldHardwareReport; text: string }> {
  const cfg = configFile === null ? {} : fieldHardwareConfig(await loadConfig(createContract(), configFile));
  const report = await probeFieldHardware(cfg, deps ?? { paths: hostPaths(), clock: systemClock, log: silentLogger() });
  return { json: report, text: formatFieldHardware(report) };
}
