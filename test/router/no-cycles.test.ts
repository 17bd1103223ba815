/**
 * No import circle in src/router: modules that import each other have no order in which both are
 * initialised, and make each half impossible to read or test alone (issue 12 §3). Two checks:
 * - runtime imports (what Node loads) form no cycle anywhere in src/router;
 * - counting `import type` too, no cycle outside routing/ (routing/ is owned elsewhere and has a
 *   type-only pair, route-table ↔ routes-validate, that erases at compile time).
 * Reads the TypeScript sources, not the build.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import ts from 'typescript';

/** src/router of the repository: three levels above dist/test/router, or the working directory (a build elsewhere). */
const ROOT = [path.resolve(__dirname, '..', '..', '..'), process.cwd()]
  .map((repo) => path.join(repo, 'src', 'router'))
  .find((dir) => fs.existsSync(path.join(dir, 'index.ts')))!;

interface Edge {
  to: string;
  typeOnly: boolean;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

function resolveLocal(from: string, spec: string): string | null {
  if (!spec.startsWith('.')) return null;
  const base = path.resolve(path.dirname(from), spec);
  for (const candidate of [`${base}.ts`, path.join(base, 'index.ts')]) if (fs.existsSync(candidate)) return candidate;
  return null;
}

/** Whether an import/export declaration brings in values (anything Node must load), or only types. */
function isTypeOnly(node: ts.ImportDeclaration | ts.ExportDeclaration): boolean {
  if (ts.isExportDeclaration(node)) {
    if (node.isTypeOnly) return true;
    const c = node.exportClause;
    return c !== undefined && ts.isNamedExports(c) && c.elements.length > 0 && c.elements.every((e) => e.isTypeOnly);
  }
  const clause = node.importClause;
  if (clause === undefined) return false; // side-effect import
  if (clause.isTypeOnly) return true;
  if (clause.name !== undefined) return false;
  const nb = clause.namedBindings;
  if (nb === undefined || ts.isNamespaceImport(nb)) return false;
  return nb.elements.length > 0 && nb.elements.every((e) => e.isTypeOnly);
}

function edgesOf(file: string): Edge[] {
  const sf = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, false);
  const edges: Edge[] = [];
  for (const stmt of sf.statements) {
    if (!ts.isImportDeclaration(stmt) && !ts.isExportDeclaration(stmt)) continue;
    const spec = stmt.moduleSpecifier;
    if (spec === undefined || !ts.isStringLiteral(spec)) continue;
    const to = resolveLocal(file, spec.text);
    if (to !== null && to.startsWith(ROOT)) edges.push({ to, typeOnly: isTypeOnly(stmt) });
  }
  return edges;
}

/** Every elementary cycle's first sighting, as a list of files relative to src/router (DFS, grey set). */
function findCycles(graph: Map<string, string[]>): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): void => {
    state.set(n, 'open');
    stack.push(n);
    for (const m of graph.get(n) ?? []) {
      const s = state.get(m);
      if (s === 'open') cycles.push([...stack.slice(stack.indexOf(m)), m].map((f) => path.relative(ROOT, f)));
      else if (s === undefined) visit(m);
    }
    stack.pop();
    state.set(n, 'done');
  };
  for (const n of graph.keys()) if (!state.has(n)) visit(n);
  return cycles;
}

const files = sourceFiles(ROOT);
const all = new Map(files.map((f) => [f, edgesOf(f)] as const));

t.test('the walker sees the router (sanity)', async (t) => {
  t.ok(files.length > 10, `${files.length} files under src/router`);
  const index = all.get(path.join(ROOT, 'index.ts'));
  t.ok(index !== undefined && index.some((e) => e.to.endsWith(path.join('conn', 'client-conn.ts'))), 'index.ts imports conn/client-conn');
});

t.test('the cycle finder finds one (a → b → a) and passes a chain', async (t) => {
  const a = path.join(ROOT, 'a.ts');
  const b = path.join(ROOT, 'b.ts');
  const c = path.join(ROOT, 'c.ts');
  t.same(findCycles(new Map([[a, [b]], [b, [a]]])), [['a.ts', 'b.ts', 'a.ts']]);
  t.same(findCycles(new Map([[a, [b]], [b, [c]], [c, []]])), []);
});

t.test('no cycle of runtime imports in src/router', async (t) => {
  const graph = new Map([...all].map(([f, es]) => [f, es.filter((e) => !e.typeOnly).map((e) => e.to)] as const));
  t.same(findCycles(graph), []);
});

t.test('no cycle at all (type imports included) outside routing/', async (t) => {
  const routing = path.join(ROOT, 'routing') + path.sep;
  const mine = (f: string): boolean => !f.startsWith(routing);
  const graph = new Map([...all].filter(([f]) => mine(f)).map(([f, es]) => [f, es.map((e) => e.to).filter(mine)] as const));
  t.same(findCycles(graph), []);
});
