/**
 * The latency bench's frames (media-latency.ts): 720p30 I420 frames carrying a 24-bit
 * counter drawn as black/white blocks in the luma plane (with its complement, so a damaged
 * read is rejected, never guessed), and the names of the appsrc / appsink that stand in
 * for the camera and the display.
 */
import { randomBytes } from 'node:crypto';

export const WIDTH = 1280;
export const HEIGHT = 720;
export const FPS = 30;
export const BITRATE_KBPS = 1500;
export const SRT_LATENCY_MS = 40;
export const CAMERA_SRC = 'camsrc';
export const LATENCY_SINK = 'latsink';

// ---- the counter in the picture ------------------------------------------------------

export const COUNTER_BITS = 24;
const BLOCK = 48;
const X0 = 64; // block columns start on a macroblock boundary
const Y0 = 48;
const FRAME_BYTES = (WIDTH * HEIGHT * 3) / 2;

/** Draws `counter` (row 1) and its complement (row 2) as 48×48 luma blocks. */
export function drawCounter(y: Buffer, counter: number, width = WIDTH): void {
  for (let row = 0; row < 2; row++) {
    for (let bit = 0; bit < COUNTER_BITS; bit++) {
      const one = ((counter >>> (COUNTER_BITS - 1 - bit)) & 1) === 1;
      const v = (row === 0 ? one : !one) ? 235 : 16;
      const x = X0 + bit * BLOCK;
      for (let dy = 0; dy < BLOCK; dy++) {
        const o = (Y0 + row * BLOCK + dy) * width + x;
        y.fill(v, o, o + BLOCK);
      }
    }
  }
}

/** Reads the counter back; null when any block is ambiguous or the complement disagrees. */
export function readCounter(y: Buffer, width = WIDTH): number | null {
  const rows = [0, 0];
  const margin = BLOCK / 4;
  for (let row = 0; row < 2; row++) {
    for (let bit = 0; bit < COUNTER_BITS; bit++) {
      let sum = 0;
      let n = 0;
      const x = X0 + bit * BLOCK;
      for (let dy = margin; dy < BLOCK - margin; dy += 2) {
        const o = (Y0 + row * BLOCK + dy) * width + x;
        for (let dx = margin; dx < BLOCK - margin; dx += 2) {
          sum += y[o + dx] ?? 0;
          n++;
        }
      }
      const mean = sum / n;
      if (mean > 96 && mean < 160) return null; // neither black nor white: do not guess
      rows[row] = ((rows[row] ?? 0) << 1) | (mean >= 128 ? 1 : 0);
    }
  }
  const mask = (1 << COUNTER_BITS) - 1;
  const value = (rows[0] ?? 0) & mask;
  return ((rows[1] ?? 0) & mask) === (~value & mask) ? value : null;
}

/**
 * Camera-like frames: a scrolling textured background (motion the encoder must code), a
 * band of fresh noise (so the rate control spends its whole budget, as a real camera
 * does at 1.5 Mbit/s), neutral chroma, and the counter.
 */
export class FrameMaker {
  private readonly texture: Buffer;
  private readonly noise = randomBytes(4 * 1024 * 1024);

  constructor() {
    const tex = Buffer.alloc(WIDTH * HEIGHT * 2);
    const cells = randomBytes((WIDTH / 16) * ((HEIGHT * 2) / 16));
    for (let row = 0; row < HEIGHT * 2; row++) {
      for (let x = 0; x < WIDTH; x++) {
        const cell = cells[Math.floor(row / 16) * (WIDTH / 16) + Math.floor(x / 16)] ?? 128;
        tex[row * WIDTH + x] = 40 + ((cell * 175) >> 8) + ((x + row) & 7);
      }
    }
    this.texture = tex;
  }

  /** One buffer, reused: appsrc push() copies it, so it is free again when push returns. */
  private readonly out = Buffer.alloc(FRAME_BYTES);

  /** The frame for `counter`; valid until the next call. */
  frame(counter: number): Buffer {
    const f = this.out;
    const scroll = (counter * 4) % HEIGHT;
    this.texture.copy(f, 0, scroll * WIDTH, (scroll + HEIGHT) * WIDTH);
    const bandRows = 64;
    const bandAt = 560 * WIDTH;
    const from = (counter * 7919 * 64) % (this.noise.length - bandRows * WIDTH);
    this.noise.copy(f, bandAt, from, from + bandRows * WIDTH);
    f.fill(128, WIDTH * HEIGHT);
    drawCounter(f, counter);
    return f;
  }
}

// ---- pipelines cut out of the plan ----------------------------------------------------

