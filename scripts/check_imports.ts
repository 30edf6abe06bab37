// The import rules of docs/architecture.md, checked: no import cycle among
// the files of src/ (type-only imports included: a cycle of types is still
// two modules that cannot be understood apart), and no import that points
// against the layer order that document's layer table gives: a file imports
// only from its own row of the table or from a row of lower rank.
//
//   deno run --allow-read scripts/check_imports.ts [ROOT]
//
// Prints one line per problem and exits 1 when there is any.

import { dirname, join, normalize, relative } from "node:path";

/** One layer of the table: its number and the paths (files or folders ending in /) it holds. */
export interface Layer {
  rank: number;
  name: string;
  paths: string[];
}

/** Relative specifiers of every import, export-from and dynamic import in `source`. */
export function importsOf(source: string): string[] {
  const out: string[] = [];
  // Comments could quote an import; they are dropped first (strings keep their text).
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const patterns = [
    /^\s*(?:import|export)\s[^;]*?\sfrom\s*["']([^"']+)["']/gms,
    /^\s*import\s*["']([^"']+)["']/gm,
    /\bimport\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const re of patterns) {
    for (const m of code.matchAll(re)) if (m[1]!.startsWith(".")) out.push(m[1]!);
  }
  return out;
}

/** The layer table of `doc`: rows `| rank | name | paths, comma-separated |` under "## Layers". */
export function parseLayers(doc: string): Layer[] {
  const start = doc.search(/^## Layers/m);
  if (start === -1) throw new Error('no "## Layers" section');
  const layers: Layer[] = [];
  for (const line of doc.slice(start).split("\n").slice(1)) {
    if (line.startsWith("## ")) break;
    const cells = line.split("|").map((c) => c.trim());
    if (cells.length < 5 || !/^\d+$/.test(cells[1]!)) continue;
    const paths = [...cells[3]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    layers.push({ rank: Number(cells[1]), name: cells[2]!, paths });
  }
  if (layers.length === 0) throw new Error("the Layers section has no table rows");
  return layers;
}

/** The layer of `file` (relative to the root): the one whose longest path matches it. */
export function layerOf(file: string, layers: Layer[]): Layer | null {
  let best: { layer: Layer; len: number } | null = null;
  for (const layer of layers) {
    for (const p of layer.paths) {
      const hit = p.endsWith("/") ? file.startsWith(p) : file === p;
      if (hit && (!best || p.length > best.len)) best = { layer, len: p.length };
    }
  }
  return best?.layer ?? null;
}

/** Import graph of the .ts files below `dir` (paths relative to `root`). */
export function importGraph(root: string, dir: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const walk = (d: string) => {
    for (const e of Deno.readDirSync(join(root, d))) {
      const rel = join(d, e.name);
      if (e.isDirectory) walk(rel);
      else if (e.name.endsWith(".ts")) {
        const from = dirname(rel);
        const deps = importsOf(Deno.readTextFileSync(join(root, rel)))
          .map((s) => normalize(join(from, s)));
        graph.set(rel, [...new Set(deps)]);
      }
    }
  };
  walk(dir);
  return graph;
}

/** Every cycle of `graph`, each once, as the files in import order with the first repeated. */
export function findCycles(graph: Map<string, string[]>): string[][] {
  // Tarjan's strongly connected components; each component with a cycle is
  // reported by one cycle through it, found by a walk inside the component.
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const connect = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const c: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        c.push(w);
      } while (w !== v);
      const selfLoop = c.length === 1 && (graph.get(v) ?? []).includes(v);
      if (c.length > 1 || selfLoop) components.push(c);
    }
  };
  for (const v of [...graph.keys()].sort()) if (!idx.has(v)) connect(v);
  return components.map((c) => cycleIn(graph, new Set(c)));
}

function cycleIn(graph: Map<string, string[]>, members: Set<string>): string[] {
  const start = [...members].sort()[0]!;
  // Breadth-first from start back to start, staying inside the component: the shortest cycle.
  const prev = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of graph.get(v) ?? []) {
      if (!members.has(w)) continue;
      if (w === start) {
        const path = [start];
        for (let x = v; x !== start; x = prev.get(x)!) path.splice(1, 0, x);
        return [...path, start];
      }
      if (!prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start, start];
}

/** Problems of the tree at `root`: cycles, files no layer names, imports against the layers. */
export function checkImports(root: string, doc: string): string[] {
  const layers = parseLayers(doc);
  const graph = importGraph(root, "src");
  const problems: string[] = [];
  for (const cycle of findCycles(graph)) problems.push(`import cycle: ${cycle.join(" -> ")}`);
  for (const [file, deps] of [...graph].sort(([a], [b]) => a.localeCompare(b))) {
    const mine = layerOf(file, layers);
    if (!mine) {
      problems.push(`${file}: in no layer of docs/architecture.md`);
      continue;
    }
    for (const dep of deps) {
      const theirs = layerOf(dep, layers);
      // Lower layers, and the file's own row; rows of the same rank are peers that stay apart.
      if (theirs && theirs !== mine && theirs.rank >= mine.rank) {
        problems.push(
          `${file} (layer ${mine.rank} ${mine.name}) imports ${dep} ` +
            `(layer ${theirs.rank} ${theirs.name}): against the layer order`,
        );
      }
    }
  }
  return problems;
}

if (import.meta.main) {
  const root = Deno.args[0] ?? join(dirname(new URL(import.meta.url).pathname), "..");
  const docPath = join(root, "docs", "architecture.md");
  const problems = checkImports(root, Deno.readTextFileSync(docPath));
  for (const p of problems) console.error(`check_imports: ${p}`);
  if (problems.length > 0) Deno.exit(1);
  console.log(
    `check_imports: no cycles, no import against the layers (${relative(root, docPath)})`,
  );
}
