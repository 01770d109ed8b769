/**
 * The project's shape, checked by `npm run lint` (so by `npm test`):
 *
 * - shape/boundaries: a top folder imports only the folders below it —
 *   lib → nothing of ours; gst-pipelines → lib; ota → lib; provisioning → lib, ota;
 *   device → all of them (tests and scripts may import anything) — and a folder is
 *   entered through its index.ts. From outside gst-pipelines/
 *   (or device/, lib/) only its top index.ts; inside it, a sibling subfolder (plan/,
 *   worker/, mqtt/ …) only through that subfolder's index.ts.
 * - shape/no-cycle: no import cycle between our modules (type-only imports included:
 *   a reader follows them too).
 */
import fs from 'node:fs';
import path from 'node:path';
import process from 'node:process';

const ROOT = process.cwd(); // eslint runs from the repository root (npm run lint)
const LAYERS = {
  lib: ['lib'],
  'gst-pipelines': ['lib', 'gst-pipelines'],
  ota: ['lib', 'ota'],
  provisioning: ['lib', 'ota', 'provisioning'],
  device: ['lib', 'gst-pipelines', 'ota', 'provisioning', 'device'],
};
/** Top folders whose subfolders are rooms of their own (entered through their index.ts). */
const ROOMS = new Set(['gst-pipelines', 'device', 'ota', 'provisioning']);

const rel = (abs) => path.relative(ROOT, abs).split(path.sep).join('/');
const top = (r) => r.split('/')[0];
/** The first-level subfolder of a file under its top folder ('' for a top-level file). */
const room = (r) => {
  const p = r.split('/');
  return p.length > 2 ? p[1] : '';
};

/** The repository file a relative specifier names (`./x.js` → `x.ts`), or null. */
function resolveSpecifier(fromAbs, spec) {
  if (!spec.startsWith('.')) return null;
  const abs = path.resolve(path.dirname(fromAbs), spec);
  if (abs.endsWith('.js') && fs.existsSync(abs.slice(0, -3) + '.ts')) return abs.slice(0, -3) + '.ts';
  return fs.existsSync(abs) ? abs : null;
}

/** The entry a file must import `target` through, or null when a direct import is fine. */
export function requiredEntry(fromRel, targetRel) {
  const tTop = top(targetRel);
  if (!(tTop in LAYERS)) return null;
  let entry = null;
  if (top(fromRel) !== tTop) entry = `${tTop}/index.ts`;
  else if (ROOMS.has(tTop) && room(targetRel) !== '' && room(fromRel) !== room(targetRel)) entry = `${tTop}/${room(targetRel)}/index.ts`;
  return entry === targetRel ? null : entry;
}

const isProduct = (r) => top(r) in LAYERS;

function importSources(node) {
  return node.source && typeof node.source.value === 'string' ? [node.source] : [];
}

const boundaries = {
  meta: { type: 'problem', schema: [] },
  create(context) {
    const from = rel(context.filename);
    if (!isProduct(from)) return {};
    const check = (node) => {
      for (const src of importSources(node)) {
        const target = resolveSpecifier(context.filename, src.value);
        if (target === null) continue;
        const t = rel(target);
        const allowed = LAYERS[top(from)];
        if (isProduct(t) && !allowed.includes(top(t))) {
          context.report({ node: src, message: `${top(from)}/ may not import ${top(t)}/ (allowed: ${allowed.join(', ')})` });
          continue;
        }
        const entry = requiredEntry(from, t);
        if (entry !== null) context.report({ node: src, message: `import ${t} through ${entry}, the folder's public entry` });
      }
    };
    return { ImportDeclaration: check, ExportNamedDeclaration: check, ExportAllDeclaration: check, ImportExpression: (n) => check({ source: n.source }) };
  },
};

/** The import graph of every product module, built once per lint run. */
let graph = null;
function buildGraph() {
  const g = new Map();
  const re = /(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*'([^']+)'|import\(\s*'([^']+)'\s*\)/g;
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const abs = path.join(dir, e.name);
      if (e.isDirectory()) walk(abs);
      else if (e.name.endsWith('.ts')) {
        const text = fs.readFileSync(abs, 'utf8');
        const out = new Set();
        for (const m of text.matchAll(re)) {
          const t = resolveSpecifier(abs, m[1] ?? m[2]);
          if (t !== null && isProduct(rel(t))) out.add(rel(t));
        }
        g.set(rel(abs), out);
      }
    }
  };
  for (const t of Object.keys(LAYERS)) if (fs.existsSync(path.join(ROOT, t))) walk(path.join(ROOT, t));
  return g;
}

/** Strongly connected components with more than one module (Tarjan): the cycles. */
export function cycles(g) {
  let index = 0;
  const idx = new Map();
  const low = new Map();
  const stack = [];
  const on = new Set();
  const comp = new Map();
  const visit = (v) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of g.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const members = [];
      let w;
      do {
        w = stack.pop();
        on.delete(w);
        members.push(w);
      } while (w !== v);
      if (members.length > 1) for (const m of members) comp.set(m, members);
    }
  };
  for (const v of g.keys()) if (!idx.has(v)) visit(v);
  return comp;
}

let cycleOf = null;
const noCycle = {
  meta: { type: 'problem', schema: [] },
  create(context) {
    const from = rel(context.filename);
    if (!isProduct(from)) return {};
    if (graph === null) {
      graph = buildGraph();
      cycleOf = cycles(graph);
    }
    const members = cycleOf.get(from);
    if (!members) return {};
    const check = (node) => {
      for (const src of importSources(node)) {
        const target = resolveSpecifier(context.filename, src.value);
        if (target !== null && members.includes(rel(target))) {
          context.report({ node: src, message: `import cycle: ${[...members].sort().join(' → ')}` });
        }
      }
    };
    return { ImportDeclaration: check, ExportNamedDeclaration: check, ExportAllDeclaration: check };
  },
};

export default { rules: { boundaries, 'no-cycle': noCycle } };
