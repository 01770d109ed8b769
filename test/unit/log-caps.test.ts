import { describe, expect, it } from 'vitest';
import { createLogger, LOG_FIELD_CHARS, LOG_LINE_CHARS, LogRing } from '../../lib/index.js';

describe('log lines are capped: remote input cannot make one line large', () => {
  it('cuts long string fields, long messages and long arrays; keeps redaction', () => {
    const ring = new LogRing(10);
    const log = createLogger({ destination: ring });
    const huge = 'p'.repeat(250_000);
    log.warn({ evt: 'command.bad_request', problems: huge, list: Array.from({ length: 5000 }, (_, i) => i), nested: { deeper: { text: huge } }, srt: { passphrase: 'hunter2hunter2' } }, huge);
    const [line] = ring.tail(1);
    expect(line!.length).toBeLessThan(4 * LOG_FIELD_CHARS + 2000);
    const o = JSON.parse(line!) as { problems: string; msg: string; list: unknown[]; nested: { deeper: { text: string } }; srt: { passphrase: string } };
    expect(o.problems).toMatch(new RegExp(`^p{${LOG_FIELD_CHARS}}…\\[${250_000 - LOG_FIELD_CHARS} more chars\\]$`));
    expect(o.msg.length).toBeLessThan(LOG_FIELD_CHARS + 40);
    expect(o.nested.deeper.text.length).toBeLessThan(LOG_FIELD_CHARS + 40);
    expect(o.list).toHaveLength(51);
    expect(o.srt.passphrase).toBe('[redacted]');
    expect(line).not.toContain('hunter2');
  });

  it("redacts the status page's PIN wherever the config lands in a line; errors() finds the error lines", () => {
    const ring = new LogRing(10);
    const log = createLogger({ destination: ring });
    log.info({ evt: 'config.loaded', config: { field: { statusPage: { port: 8080, pin: '482913' } } } }, 'loaded');
    log.error({ evt: 'x.failed', pin: '482913' }, 'failed');
    const text = ring.tail(2).join('\n');
    expect(text).not.toContain('482913');
    expect(text).toContain('"port":8080');
    expect(ring.errors(5)).toHaveLength(1);
    expect(JSON.parse(ring.errors(5)[0]!)).toMatchObject({ evt: 'x.failed', pin: '[redacted]' });
  });

  it('the ring cuts a line over LOG_LINE_CHARS and bounds an unterminated one', () => {
    const ring = new LogRing(5);
    ring.write(`${'a'.repeat(LOG_LINE_CHARS * 3)}\n`);
    ring.write('b'.repeat(LOG_LINE_CHARS * 10)); // no newline yet
    ring.write('\n');
    const [a, b] = ring.tail(2);
    expect(a).toMatch(new RegExp(`…\\[cut ${LOG_LINE_CHARS * 2} chars\\]$`));
    expect(b!.length).toBeLessThan(LOG_LINE_CHARS + 40);
  });
});
