// `sara pprof`: takes a CPU profile or a heap snapshot of a server started
// with --debug, over the V8 inspector's DevTools protocol, into files that
// Chrome DevTools opens (.cpuprofile, .heapsnapshot).

import { parseArgs } from "node:util";
import { errMsg } from "../log.ts";

/** Default inspector port of `sara --debug`. */
export const DEBUG_PORT = 9229;

const HELP = `NAME:
   sara pprof - CPU profile or heap snapshot of a server started with --debug

USAGE:
   sara pprof [options]

OPTIONS:
   --type value     cpu or mem (default: cpu)
   --seconds value  CPU profile length (default: 10)
   --out value      output file (default: /tmp/sara_cpu.cpuprofile or /tmp/sara_mem.heapsnapshot)
   --port value     inspector port of the server (default: ${DEBUG_PORT})
`;

/** Runs `sara pprof`; returns the exit code. */
export async function pprofCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      type: { type: "string", default: "cpu" },
      seconds: { type: "string", default: "10" },
      out: { type: "string" },
      port: { type: "string", default: String(DEBUG_PORT) },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (values.type !== "cpu" && values.type !== "mem") {
    console.error(`sara pprof: --type must be cpu or mem`);
    return 2;
  }
  const seconds = Number(values.seconds);
  const out = values.out ??
    (values.type === "cpu" ? "/tmp/sara_cpu.cpuprofile" : "/tmp/sara_mem.heapsnapshot");
  let session: DevTools;
  try {
    session = await DevTools.connect(Number(values.port));
  } catch (err) {
    console.error(
      `sara pprof: no inspector on 127.0.0.1:${values.port} (start sara with --debug): ${
        errMsg(err)
      }`,
    );
    return 1;
  }
  try {
    if (values.type === "cpu") {
      await session.call("Profiler.enable");
      await session.call("Profiler.start");
      console.error(`sara pprof: profiling for ${seconds} s`);
      await new Promise((r) => setTimeout(r, seconds * 1000));
      const { profile } = await session.call("Profiler.stop") as { profile: unknown };
      await Deno.writeTextFile(out, JSON.stringify(profile));
    } else {
      const file = await Deno.open(out, { write: true, create: true, truncate: true });
      const enc = new TextEncoder();
      session.onEvent = (method, params) => {
        if (method === "HeapProfiler.addHeapSnapshotChunk") {
          file.writeSync(enc.encode((params as { chunk: string }).chunk));
        }
      };
      await session.call("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
      file.close();
    }
  } finally {
    session.close();
  }
  console.log(`sara pprof: wrote ${out}`);
  return 0;
}

/** A minimal DevTools protocol client over the inspector's WebSocket. */
class DevTools {
  #next = 1;
  #pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  onEvent: (method: string, params: unknown) => void = () => {};

  private constructor(readonly ws: WebSocket) {
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data as string);
      if (msg.id !== undefined) {
        const p = this.#pending.get(msg.id);
        this.#pending.delete(msg.id);
        if (msg.error) p?.reject(new Error(msg.error.message));
        else p?.resolve(msg.result);
      } else {
        this.onEvent(msg.method, msg.params);
      }
    };
  }

  static async connect(port: number): Promise<DevTools> {
    const res = await fetch(`http://127.0.0.1:${port}/json/list`);
    const targets = await res.json() as { webSocketDebuggerUrl: string }[];
    const url = targets[0]?.webSocketDebuggerUrl;
    if (!url) throw new Error("the inspector lists no target");
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error(`cannot open ${url}`));
    });
    return new DevTools(ws);
  }

  call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.#next++;
    this.ws.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve, reject) => this.#pending.set(id, { resolve, reject }));
  }

  close(): void {
    this.ws.close();
  }
}
