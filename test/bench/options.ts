/**
 * The bench's command line (see run.ts for what each option does): parsed into one
 * BenchOptions, defaults meeting the documented minimums; a UsageError for anything else.
 */
import { LATENCY_VARIANTS, type LatencyVariantId } from './media-latency.js';

export interface BenchOptions {
  json: boolean;
  only: string[] | null;
  latencySeconds: number;
  referenceSeconds: number;
  latencyVariants: LatencyVariantId[];
  cpuSeconds: number;
  cpuRounds: number;
  cpuSettleSeconds: number;
  cpuMode: 'together' | 'alternate';
  startupRuns: number;
  agentRuns: number;
  /** The Node that runs the agent in the agent section (null: the bench's own). */
  agentNode: string | null;
  /** Commands per kind in the commands section's bursts. */
  commandBurst: number;
  /** Where the adapt section writes its SVG plot (none when null). */
  plotDir: string | null;
  /** Updates with the 50 MB bundle in the ota section. */
  otaRuns: number;
  /** compare: measured seconds per side and round, settle seconds before each window, rounds. */
  compareSeconds: number;
  compareSettleSeconds: number;
  compareRounds: number;
  /** soak (only with --only soak): the meeting's length in minutes. */
  soakMinutes: number;
}

export class UsageError extends Error {}

export function parseArgs(argv: string[]): BenchOptions {
  const o: BenchOptions = {
    json: false,
    only: null,
    latencySeconds: 15,
    referenceSeconds: 10,
    latencyVariants: ['ours', 'ours-video-only', 'ours-node', 'direct', 'before', 'rtp'],
    cpuSeconds: 20,
    cpuRounds: 4,
    cpuSettleSeconds: 10,
    cpuMode: 'together',
    startupRuns: 7,
    agentRuns: 5,
    agentNode: null,
    commandBurst: 2000,
    plotDir: null,
    otaRuns: 3,
    compareSeconds: 20,
    compareSettleSeconds: 6,
    compareRounds: 2,
    soakMinutes: 30,
  };
  const num = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new UsageError(`${flag} needs a number ≥ ${min}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string | undefined => inline ?? argv[++i];
    switch (flag) {
      case '--json':
        o.json = true;
        break;
      case '--only':
        o.only = (value() ?? '').split(',').map((s) => s.trim()).filter(Boolean);
        break;
      case '--latency-seconds':
        o.latencySeconds = num(flag, value(), 1);
        break;
      case '--reference-seconds':
        o.referenceSeconds = num(flag, value(), 1);
        break;
      case '--latency-variants': {
        const list = (value() ?? '').split(',').map((s) => s.trim()).filter(Boolean);
        for (const v of list) if (!(v in LATENCY_VARIANTS)) throw new UsageError(`unknown latency variant ${v} (known: ${Object.keys(LATENCY_VARIANTS).join(', ')})`);
        if (!list.includes('ours')) throw new UsageError('--latency-variants must include ours');
        o.latencyVariants = list as LatencyVariantId[];
        break;
      }
      case '--cpu-seconds':
        o.cpuSeconds = num(flag, value(), 1);
        break;
      case '--cpu-rounds':
        o.cpuRounds = Math.round(num(flag, value(), 1));
        break;
      case '--cpu-settle-seconds':
        o.cpuSettleSeconds = num(flag, value(), 0);
        break;
      case '--cpu-mode': {
        const m = value();
        if (m !== 'together' && m !== 'alternate') throw new UsageError('--cpu-mode is together or alternate');
        o.cpuMode = m;
        break;
      }
      case '--startup-runs':
        o.startupRuns = Math.round(num(flag, value(), 1));
        break;
      case '--command-burst':
        o.commandBurst = Math.round(num(flag, value(), 10));
        break;
      case '--agent-node':
        o.agentNode = value() ?? null;
        if (!o.agentNode) throw new UsageError('--agent-node needs a path to a node binary');
        break;
      case '--agent-runs':
        o.agentRuns = Math.round(num(flag, value(), 1));
        break;
      case '--ota-runs':
        o.otaRuns = Math.round(num(flag, value(), 1));
        break;
      case '--compare-seconds':
        o.compareSeconds = num(flag, value(), 1);
        break;
      case '--compare-settle-seconds':
        o.compareSettleSeconds = num(flag, value(), 0);
        break;
      case '--compare-rounds':
        o.compareRounds = Math.round(num(flag, value(), 1));
        break;
      case '--soak-minutes':
        o.soakMinutes = num(flag, value(), 1);
        break;
      case '--plot-dir':
        o.plotDir = value() ?? null;
        if (!o.plotDir) throw new UsageError('--plot-dir needs a directory');
        break;
      case '--help':
      case '-h':
        throw new UsageError('usage: node dist/test/bench/run.js [--json] [--only media[.latency|.cpu|.startup|.loopback|.framer],agent,adapt,faults[.hub-away|.kill|.kill-at-hub|.stall|.orphan|.audio-resume|.auth],commands,ota[.bundle|.delta],compare[.ffmpeg|.chromium],soak,fuzz[.TARGET],fleet[.n1000|.n5000]] [--compare-seconds N] [--compare-settle-seconds N] [--compare-rounds N] [--soak-minutes N] [--agent-runs N] [--agent-node PATH] [--command-burst N] [--plot-dir DIR] [--ota-runs N] [--latency-seconds N] [--reference-seconds N] [--latency-variants LIST] [--cpu-seconds N] [--cpu-rounds N] [--cpu-settle-seconds N] [--cpu-mode together|alternate] [--startup-runs N]');
      default:
        throw new UsageError(`unknown option ${a} (try --help)`);
    }
  }
  return o;
}
