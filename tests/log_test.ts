// The logger's two formats (`logformat`): text lines, and JSON lines holding
// time, level, msg and the fields, one object per line whatever the message.

import assert from "node:assert/strict";
import { Logger } from "../src/log.ts";

function withLog(format: "text" | "json", level: number, fn: (log: Logger) => void): string[] {
  const path = Deno.makeTempFileSync({ prefix: "sara-log-" });
  try {
    const log = new Logger({ level, format, file: path, stdout: false });
    fn(log);
    log.close();
    return Deno.readTextFileSync(path).split("\n").filter((l) => l !== "");
  } finally {
    Deno.removeSync(path);
  }
}

Deno.test("logformat json writes one object per line with time, level, msg and the fields", () => {
  const lines = withLog("json", 3, (log) => {
    log.info("login", { sid: "n01-1", jid: "a@d", stored: 2, tls: false, gone: undefined });
    log.warn('two\nlines "quoted"');
    log.error("boom");
    log.debug("details", { n: 1 });
  });
  assert.equal(lines.length, 4);
  const [info, warn, error, debug] = lines.map((l) => JSON.parse(l));
  assert.deepEqual(Object.keys(info), ["time", "level", "msg", "sid", "jid", "stored", "tls"]);
  assert.equal(new Date(info.time).toISOString(), info.time);
  assert.deepEqual(
    [info.level, info.msg, info.sid, info.jid, info.stored, info.tls],
    ["INFO", "login", "n01-1", "a@d", 2, false],
  );
  assert.deepEqual([warn.level, warn.msg], ["WARN", 'two\nlines "quoted"']);
  assert.deepEqual([error.level, debug.level, debug.n], ["ERROR", "DEBUG", 1]);
});

Deno.test("logformat json honours loglevel like text does", () => {
  const lines = withLog("json", 1, (log) => {
    log.error("e");
    log.warn("w");
    log.info("i");
    log.debug("d");
  });
  assert.deepEqual(lines.map((l) => JSON.parse(l).msg), ["e", "w"]);
});

Deno.test("logformat text writes [time] [LEVEL] msg key=value, quoting values with spaces", () => {
  const [line] = withLog("text", 2, (log) => log.info("login", { jid: "a@d", why: "two words" }));
  assert.match(line!, /^\[\d{4}-\d\d-\d\dT[\d:.]+Z\] \[INFO\] login jid=a@d why="two words"$/);
});
