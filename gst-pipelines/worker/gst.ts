/**
 * The only file that loads the native GStreamer binding, and only when called: it is
 * used by the media worker and the local test hub, both child processes. The agent
 * never imports a caller of this at run time (docs/platform-facts.md, "The GStreamer binding leaks and can crash its process": leaks, segfaults,
 * and threadpool threads held for good by pollBus/pull).
 */
import { createRequire } from 'node:module';

export interface GstElement {
  [property: string]: unknown;
  pull?: (cb: (buf: Buffer | null, caps: Record<string, unknown>) => void) => void;
  push?: (buf: Buffer, pts?: Buffer) => void;
}

export interface BusMessage {
  type: string;
  _src_element_name?: string;
  name?: string;
  message?: string;
  [field: string]: unknown;
}

export interface GstPipeline {
  play(): void;
  pause(): void;
  stop(): void;
  sendEOS(): void;
  findChild(name: string): GstElement | undefined;
  pollBus(cb: (msg: BusMessage) => void): void;
  forceKeyUnit(name: string, count: number): boolean;
}

export interface GstBinding {
  Pipeline: new (launch: string) => GstPipeline;
}

/** Set by scripts/patch-binding.mjs on the binding it rebuilt (property reads freed). */
const PATCH_MARKER = 'propertyReadsFreed';
let readsFreed = false;

export function loadGst(): GstBinding {
  const require = createRequire(import.meta.url);
  const b = require('gstreamer-superficial') as GstBinding & Record<string, unknown>;
  readsFreed = b[PATCH_MARKER] === true;
  return b;
}

/**
 * Whether the loaded binding frees what a property read allocates (our patch, applied at
 * `npm install` by scripts/patch-binding.mjs). The stock 1.7.4 leaks ~2 KB per read of
 * srtsink's `stats`; callers that read often (link adaptation) slow down without it.
 */
export function bindingFreesReads(): boolean {
  return readsFreed;
}

/** Reads a property; with the stock binding every read leaks ~1.9 KB, so callers keep reads rare. */
export function readProp(el: GstElement | undefined, prop: string): unknown {
  return el ? el[prop] : undefined;
}
