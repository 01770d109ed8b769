/**
 * What the `identify` command asks of the LEDs (device/actions.ts). On a box the field's LED
 * controller shows `identify` (device/field: the agent passes `identify`'s time to the field
 * view, and answers with the LEDs it drives); the demo's dry run says what it would blink;
 * tests use test/fakes' scriptable FakeLeds.
 */
export interface Leds {
  /** Blinks the LEDs for `ms`; the names of the LEDs it blinks. */
  blink(ms: number): Promise<{ leds: string[] }>;
}

/** A dry run (the demo on a laptop): says what it would blink, touches nothing, blinks nothing. */
export function logOnlyLeds(log: (line: string) => void): Leds {
  return {
    async blink(ms) {
      log(`dry run: would blink the LEDs for ${ms} ms`);
      return { leds: [] };
    },
  };
}
