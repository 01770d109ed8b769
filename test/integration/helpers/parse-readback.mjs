/**
 * Run with `node parse-readback.mjs` (a child of plan-fuzz.test.ts): reads one JSON array
 * of jobs from stdin, `{ launch, reads: [[elementName, property], …] }`, parses each
 * launch string with the project's gstreamer-superficial (gst_parse_launch: the parser
 * the worker uses), never plays it, reads the properties back by element name, and prints
 * one JSON array: `{ values }` (a property of an element not found is `{ missing: true }`)
 * or `{ error }` when the parser refused the description.
 */
/* global process */
import { createRequire } from 'node:module';

const gst = createRequire(import.meta.url)('gstreamer-superficial');

let input = '';
process.stdin.setEncoding('utf8');
for await (const chunk of process.stdin) input += chunk;

const out = [];
for (const job of JSON.parse(input)) {
  let p;
  try {
    p = new gst.Pipeline(job.launch);
  } catch (e) {
    out.push({ error: String(e?.message ?? e) });
    continue;
  }
  const values = job.reads.map(([name, prop]) => {
    const el = p.findChild(name);
    return el === undefined ? { missing: true } : el[prop];
  });
  out.push({ values });
}
process.stdout.write(JSON.stringify(out));
