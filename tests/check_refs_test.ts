// scripts/check_refs.ts on small made-up trees, run as `deno task check` runs
// it: a citation of a missing section or document, or a bare protocol
// citation, fails with the file and line; good citations pass; and this
// repository passes. The bad citations are assembled from parts, so that this
// file does not itself hold one.

import assert from "node:assert/strict";
import { join } from "node:path";
import { checkRefs, problemsIn, sectionsOf } from "../scripts/check_refs.ts";

const SCRIPT = new URL("../scripts/check_refs.ts", import.meta.url).pathname;
const DOC = "# Proto\n\n## 1. Framing\n\ntext\n\n## 2. Packets\n\n### 2.1 not a section\n";
const cite = (doc: string, sections: string) => `docs/${doc}.md ${sections}`;

/** Runs the checker as a process on a temp tree of `files`; its exit code and output. */
async function runOn(files: Record<string, string>): Promise<{ code: number; out: string }> {
  const root = await Deno.makeTempDir({ prefix: "sara-refs-" });
  try {
    for (const [path, text] of Object.entries(files)) {
      await Deno.mkdir(join(root, path, ".."), { recursive: true });
      await Deno.writeTextFile(join(root, path), text);
    }
    const run = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", SCRIPT, root],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return { code: run.code, out: dec.decode(run.stdout) + dec.decode(run.stderr) };
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("a citation of a section that does not exist fails the check, naming file and line", async () => {
  const { code, out } = await runOn({
    "docs/proto.md": DOC,
    "src/a.ts": `// fine (${cite("proto", "§1, §2")})\n// wrong (${cite("proto", "§3")})\n`,
  });
  assert.equal(code, 1);
  assert.match(out, /src\/a\.ts:2: docs\/proto\.md has no section "## 3\."/);
  assert.doesNotMatch(out, /a\.ts:1/);
});

Deno.test("a citation of a missing document, or a bare protocol citation, fails the check", async () => {
  const { code, out } = await runOn({
    "docs/proto.md": DOC,
    "tests/b_test.ts": `// ${cite("gone", "§1")}\n`,
    "scripts/c.ts": `\n\n// the framing (${"PROTO" + "COL"} 1)\n`,
  });
  assert.equal(code, 1);
  assert.match(out, /tests\/b_test\.ts:1: docs\/gone\.md does not exist/);
  assert.match(out, /scripts\/c\.ts:3: bare protocol citation/);
});

Deno.test("a tree whose citations all resolve passes the check", async () => {
  const { code, out } = await runOn({
    "docs/proto.md": DOC,
    "src/a.ts": `// ${cite("proto", "§1-§2")}; ${cite("proto", "§2")}\nconst CLOSE_PROTOCOL = 1;\n`,
    "main.ts": `// ${cite("proto", "§1")}\n`,
  });
  assert.equal(code, 0, out);
});

Deno.test("only `## N.` headings are sections; every number of a list is checked", () => {
  assert.deepEqual([...sectionsOf(DOC)], [1, 2]);
  const docs = (name: string) => name === "proto" ? DOC : undefined;
  assert.deepEqual(problemsIn("x.ts", `// ${cite("proto", "§1, §2, §9")}`, docs), [
    'x.ts:1: docs/proto.md has no section "## 9."',
  ]);
});

Deno.test("every citation in this repository resolves", () => {
  const root = join(new URL(".", import.meta.url).pathname, "..");
  assert.deepEqual(checkRefs(root), []);
});
