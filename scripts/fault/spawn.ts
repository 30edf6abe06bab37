// Child processes of the scripts that must not outlive them: a script
// killed or crashed would otherwise leave sara nodes and Redis servers behind,
// holding their ports.

/** Full path of `binary` on PATH, or null. */
export function findOnPath(binary: string): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir === "") continue;
    try {
      if (Deno.statSync(`${dir}/${binary}`).isFile) return `${dir}/${binary}`;
    } catch {
      // Not in this dir.
    }
  }
  return null;
}

/**
 * Spawns `cmd args` with stdin closed and stdout and stderr piped. Under
 * setpriv (util-linux, when installed) the kernel SIGKILLs it when this
 * process dies, however it dies; setpriv execs, so the pid stays the child's.
 */
export function spawnTied(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Deno.ChildProcess {
  const setpriv = findOnPath("setpriv");
  const [bin, argv] = setpriv === null
    ? [cmd, args]
    : [setpriv, ["--pdeathsig", "KILL", "--", cmd, ...args]];
  return new Deno.Command(bin, {
    args: argv,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...opts,
  }).spawn();
}
