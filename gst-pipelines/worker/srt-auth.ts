/**
 * A caller whose handshake the hub refuses (wrong, missing or unexpected passphrase)
 * retries at once: srtsrc/srtsink 1.22 post "Failed to authenticate: … Trying to
 * reconnect" warnings about 100 times a second, and never an error. An unreachable hub
 * warns once per connect timeout (~3 s). So a burst of SRT warnings = refused handshake.
 */
import { ELEMENT_NAMES } from '../plan/index.js';
import { classifyBusError } from './errors.js';
import type { FromWorker } from './protocol.js';

/** Warnings from one SRT element within this long count as one burst… */
const BURST_MS = 2000;
/** …and this many of them are a refused handshake. */
const BURST_WARNINGS = 20;

export class SrtAuthWatch {
  private reported = false;
  private warnings = new Map<string, number[]>();

  constructor(
    /** Only a caller is refused at the handshake (a listener waits for the next caller). */
    private readonly callerMode: boolean,
    private readonly send: (msg: FromWorker) => void,
  ) {}

  /** A bus warning from `source` (its GError text, often empty: gst.ts BusMessage). */
  onWarning(source: string, text: string): void {
    if (this.reported || !this.callerMode) return;
    if (source !== ELEMENT_NAMES.srtSink && source !== ELEMENT_NAMES.srtSrc) return;
    const c = text ? classifyBusError(source, text) : null;
    const now = Date.now();
    const recent = (this.warnings.get(source) ?? []).filter((t) => now - t < BURST_MS);
    recent.push(now);
    this.warnings.set(source, recent);
    if (c?.cause !== 'srt_auth' && recent.length < BURST_WARNINGS) return;
    this.reported = true;
    const dir = source === ELEMENT_NAMES.srtSrc ? 'receive' : 'send';
    this.send({
      type: 'error',
      cause: 'srt_auth',
      source,
      message: c?.message ?? `SRT ${dir}: the hub refuses the connection at the handshake (${recent.length} attempts in 2 s): wrong or missing passphrase/pbkeylen, or a refused stream id`,
      retryable: false,
    });
  }
}
