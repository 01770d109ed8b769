/**
 * A scriptable command runner, the process boundary of the probe and the health sampler
 * (their RunCommand: `(cmd, args, timeoutMs) → {code, stdout, stderr}`, never throwing).
 * Answers by the whole command line; a line it has no answer for is "not installed"
 * (code null, ENOENT), as execFile reports a missing binary. Answers resolve on a later
 * turn of the event loop, like a real process, and every call is recorded.
 */
export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export type RunCommand = (cmd: string, args: string[], timeoutMs: number) => Promise<CommandResult>;

/**
 * What a command line answers: its stdout (exit 0), a full result, `TIMED_OUT` (killed at
 * its timeout: code null, as the real runner reports it) or `HANGS` (never answers).
 */
export type Answer = string | { code: number | null; stdout?: string; stderr?: string } | typeof TIMED_OUT | typeof HANGS;

export const TIMED_OUT = 'timed-out' as const;
export const HANGS = 'hangs' as const;

export class FakeRunner {
  /** Every command line asked for, in order. */
  readonly calls: string[] = [];
  /** The timeout each call was given, in the same order. */
  readonly timeouts: number[] = [];
  private readonly table = new Map<string, Answer>();
  private readonly queued = new Map<string, Answer[]>();

  /**
   * `script`: command line → answer. `vars`: text replaced in the script's keys (e.g.
   * `{dev}` → the fake /dev of a host tree).
   */
  constructor(
    script: Record<string, Answer> = {},
    private readonly vars: Record<string, string> = {},
  ) {
    for (const [line, a] of Object.entries(script)) this.answer(line, a);
  }

  /** From now on `line` answers `a`. */
  answer(line: string, a: Answer): this {
    this.table.set(this.expand(line), a);
    return this;
  }

  /** The next call of `line` answers `a` (default: exit 1) — once; then the script again. */
  failNext(line: string, a: Answer = { code: 1, stderr: 'failed on cue' }): this {
    const key = this.expand(line);
    this.queued.set(key, [...(this.queued.get(key) ?? []), a]);
    return this;
  }

  /** The RunCommand to inject. */
  readonly run: RunCommand = async (cmd, args, timeoutMs) => {
    const line = [cmd, ...args].join(' ');
    this.calls.push(line);
    this.timeouts.push(timeoutMs);
    const once = this.queued.get(line);
    const a = once?.shift() ?? this.table.get(line);
    await new Promise((r) => setImmediate(r));
    if (a === undefined) return { code: null, stdout: '', stderr: `spawn ${cmd} ENOENT` };
    if (a === HANGS) return new Promise<CommandResult>(() => undefined);
    if (a === TIMED_OUT) return { code: null, stdout: '', stderr: `${cmd}: timed out after ${timeoutMs} ms` };
    if (typeof a === 'string') return { code: 0, stdout: a, stderr: '' };
    return { code: a.code, stdout: a.stdout ?? '', stderr: a.stderr ?? '' };
  };

  private expand(line: string): string {
    let out = line;
    for (const [k, v] of Object.entries(this.vars)) out = out.replaceAll(k, v);
    return out;
  }
}
