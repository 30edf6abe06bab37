// scripts/check_imports.ts on small made-up trees: it finds a type-only
// cycle and an import against the layers, passes a clean tree, and the real
// tree of this repository passes it.

import assert from "node:assert/strict";
import { join } from "node:path";
import { checkImports, importsOf, parseLayers } from "../scripts/check_imports.ts";

const DOC = `# Architecture

## Layers

| rank | layer | paths | what |
| ---- | ----- | ----- | ---- |
| 0    | base  | \`src/base.ts\`, \`src/edge/pure.ts\` | x |
| 1    | core  | \`src/core/\` | x |
| 2    | edge  | \`src/edge/\` | x |
| 2    | other | \`src/other.ts\` | x |

## Next
`;

/** What checkImports says of a temp tree holding `files`. */
async function problemsOf(files: Record<string, string>): Promise<string[]> {
  const root = await Deno.makeTempDir({ prefix: "sara-imports-" });
  try {
    for (const [path, text] of Object.entries(files)) {
      await Deno.mkdir(join(root, path, ".."), { recursive: true });
      await Deno.writeTextFile(join(root, path), text);
    }
    return checkImports(root, DOC);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

const CLEAN = {
  "src/base.ts": "export const x = 1;\n",
  "src/core/a.ts": 'import { x } from "../base.ts";\nexport const a = x;\n',
  "src/core/b.ts": 'import { a } from "./a.ts";\nexport const b = a;\n',
  "src/edge/e.ts": 'import { b } from "../core/b.ts";\nimport { p } from "./pure.ts";\n',
  "src/edge/pure.ts": "export const p = 1;\n",
};

Deno.test("a tree that follows the layers and has no cycle passes", async () => {
  assert.deepEqual(await problemsOf(CLEAN), []);
});

Deno.test("a cycle made only of type imports is reported with its files in order", async () => {
  assert.deepEqual(
    await problemsOf({
      ...CLEAN,
      "src/core/a.ts": 'import type { C } from "./c.ts";\nexport type A = C;\n',
      "src/core/c.ts": 'export type { B as C } from "./b.ts";\n',
    }),
    [
      "import cycle: src/core/a.ts -> src/core/c.ts -> src/core/b.ts -> src/core/a.ts",
    ],
  );
});

Deno.test("an import against the layers, or between peers of one rank, is reported", async () => {
  assert.deepEqual(
    await problemsOf({
      ...CLEAN,
      "src/core/b.ts": 'import type { E } from "../edge/e.ts";\nexport const b = 1;\n',
      "src/edge/e.ts": 'import { o } from "../other.ts";\n',
      "src/other.ts": "export const o = 1;\n",
    }),
    [
      "src/core/b.ts (layer 1 core) imports src/edge/e.ts (layer 2 edge): against the layer order",
      "src/edge/e.ts (layer 2 edge) imports src/other.ts (layer 2 other): against the layer order",
    ],
  );
});

Deno.test("a file that no layer names is reported", async () => {
  assert.deepEqual(await problemsOf({ ...CLEAN, "src/stray.ts": "export {};\n" }), [
    "src/stray.ts: in no layer of docs/architecture.md",
  ]);
});

Deno.test("imports are read from every form (type, export-from, side effect, dynamic), not from comments", () => {
  const src = `
// import { no } from "./commented.ts";
/* import { no2 } from "./block.ts"; */
import type {
  A,
  B,
} from "./multi.ts";
export * from "./reexport.ts";
import "./side.ts";
const m = await import("./dynamic.ts");
import { z } from "node:path";
`;
  assert.deepEqual(importsOf(src).sort(), [
    "./dynamic.ts",
    "./multi.ts",
    "./reexport.ts",
    "./side.ts",
  ]);
});

Deno.test("the layer table is read from the Layers section only", () => {
  const layers = parseLayers(DOC);
  assert.deepEqual(layers.map((l) => [l.rank, l.name]), [[0, "base"], [1, "core"], [2, "edge"], [
    2,
    "other",
  ]]);
  assert.throws(() => parseLayers("# nothing here\n"), /Layers/);
});

Deno.test("this repository's src/ follows docs/architecture.md", () => {
  const root = join(new URL(".", import.meta.url).pathname, "..");
  assert.deepEqual(
    checkImports(root, Deno.readTextFileSync(join(root, "docs/architecture.md"))),
    [],
  );
});
