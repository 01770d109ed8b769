import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { LED_CODES, ledTableMarkdown, ledTableText } from '../../device/field/index.js';

const between = (text: string): string => {
  const m = /<!-- led-table -->\n([\s\S]*?)\n<!-- \/led-table -->/.exec(text);
  return m?.[1] ?? '(no led-table block)';
};

describe('the blink-code table: one source (model.ts LED_CODES), the same everywhere', () => {
  it.each(['README.md', 'docs/field.md'])('%s carries the table as the code has it', async (file) => {
    expect(between(await readFile(file, 'utf8'))).toBe(ledTableMarkdown());
  });

  it('ep status --leds: every code once, the lit one marked', () => {
    const text = ledTableText('no_hub');
    expect(text.split('\n')).toHaveLength(LED_CODES.length);
    expect(text.split('\n').filter((l) => l.startsWith('▶'))).toEqual([expect.stringContaining('4 pulses')]);
    expect(new Set(LED_CODES.map((c) => c.pattern)).size).toBe(LED_CODES.length); // no two codes look alike
  });
});
