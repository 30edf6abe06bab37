// A logger whose lines tests can read back (to check what is logged, and
// that secrets never are), written to a temp file removed on dispose.

import { Logger } from "../../src/log.ts";

/** A debug-level logger writing to a temp file. */
export class CapturedLog implements Disposable {
  readonly log: Logger;

  constructor(readonly path = Deno.makeTempFileSync({ prefix: "sara-log-" })) {
    this.log = new Logger({ level: 3, format: "text", file: path, stdout: false });
  }

  /** Everything logged so far. */
  text(): string {
    return Deno.readTextFileSync(this.path);
  }

  [Symbol.dispose](): void {
    this.log.close();
    Deno.removeSync(this.path);
  }
}
