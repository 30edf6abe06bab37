// Citations of the repository's documents, checked: every `docs/<name>.md §N`
// in src/, tests/, scripts/ and main.ts must name a file of docs/ that has a
// section headed `## N.`, so a reader can follow each one. The protocol was
// once cited by section number alone, from a document outside the repository;
// such bare citations (the word PROTOCOL, in capitals, followed by a number)
// are refused too.
//
//   deno run --allow-read scripts/check_refs.ts [ROOT]
//
// Prints one `file:line: problem` per bad citation and exits 1 when there is any.

import { dirname, join, relative } from "node:path";

/** The folders and files whose text is checked, relative to the root. */
export const CHECKED = ["src", "tests", "scripts", "main.ts"];

/** One cited document and the section list after its name, such as `§3, §4` or `§1-§4`. */
const CITATION = /docs\/([A-Za-z0-9_-]+)\.md((?:\s*[,-]?\s*§\d+)+)/g;
/** The old form of a protocol citation, without a document in the repository. */
const BARE = /\bPROTOCOL(?:\.md)?\s+(?:section\s+)?\d/;

/** Section numbers of a document: its `## N.` headings. */
export function sectionsOf(doc: string): Set<number> {
  return new Set([...doc.matchAll(/^## (\d+)\./gm)].map((m) => Number(m[1])));
}

/**
 * Problems of one file's text. `docs` gives a document's text by name
 * (`protocol` for docs/protocol.md), undefined when there is no such file.
 */
export function problemsIn(
  file: string,
  text: string,
  docs: (name: string) => string | undefined,
): string[] {
  const problems: string[] = [];
  const sections = new Map<string, Set<number> | undefined>();
  text.split("\n").forEach((line, i) => {
    const at = `${file}:${i + 1}`;
    if (BARE.test(line)) {
      problems.push(`${at}: bare protocol citation; cite docs/protocol.md and a section`);
    }
    for (const m of line.matchAll(CITATION)) {
      const name = m[1]!;
      if (!sections.has(name)) {
        const doc = docs(name);
        sections.set(name, doc === undefined ? undefined : sectionsOf(doc));
      }
      const have = sections.get(name);
      if (have === undefined) {
        problems.push(`${at}: docs/${name}.md does not exist`);
        continue;
      }
      for (const n of [...m[2]!.matchAll(/§(\d+)/g)].map((s) => Number(s[1]))) {
        if (!have.has(n)) problems.push(`${at}: docs/${name}.md has no section "## ${n}."`);
      }
    }
  });
  return problems;
}

/** Every file under `path` (a file, or a folder walked recursively), relative to `root`. */
function filesUnder(root: string, path: string): string[] {
  const full = join(root, path);
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(full);
  } catch {
    return [];
  }
  if (info.isFile) return [path];
  const out: string[] = [];
  for (const entry of Deno.readDirSync(full)) out.push(...filesUnder(root, join(path, entry.name)));
  return out.sort();
}

/** Problems of the whole tree at `root`. */
export function checkRefs(root: string): string[] {
  const docs = (name: string): string | undefined => {
    try {
      return Deno.readTextFileSync(join(root, "docs", `${name}.md`));
    } catch {
      return undefined;
    }
  };
  const problems: string[] = [];
  for (const file of CHECKED.flatMap((p) => filesUnder(root, p))) {
    problems.push(...problemsIn(file, Deno.readTextFileSync(join(root, file)), docs));
  }
  return problems;
}

if (import.meta.main) {
  const root = Deno.args[0] ?? join(dirname(new URL(import.meta.url).pathname), "..");
  const problems = checkRefs(root);
  for (const p of problems) console.error(`check_refs: ${p}`);
  if (problems.length > 0) Deno.exit(1);
  console.log(`check_refs: every docs/*.md § citation resolves (${relative(".", root) || "."})`);
}
