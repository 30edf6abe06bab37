// Levelled logger (0 ERROR .. 3 DEBUG) writing one line per event to stdout
// and to the log file, as text or JSON lines; the file reopens on demand
// (SIGHUP) so that logrotate can move it.

import { closeSync, openSync, writeSync } from "node:fs";

/** Log levels as configured by `loglevel`. */
export const Level = { error: 0, warn: 1, info: 2, debug: 3 } as const;
export type Level = typeof Level[keyof typeof Level];

const NAMES = ["ERROR", "WARN", "INFO", "DEBUG"] as const;

/** Extra key/values of one log line. Secrets are never passed here. */
export type Fields = Record<string, string | number | boolean | undefined>;

/** Where and how log lines go. */
export interface LogOptions {
  level: number;
  format: "text" | "json";
  /** Path of the log file, or "" for stdout only. */
  file: string;
  /** Also write to stdout (the CLI does; tests keep quiet). */
  stdout: boolean;
}

/** A small logger; `enabled(level)` lets hot paths skip building a line at all. */
export class Logger {
  #fd: number | null = null;
  readonly #enc = new TextEncoder();

  constructor(readonly options: LogOptions) {
    this.reopen();
  }

  /** True when lines of `level` are written: check before building costly fields. */
  enabled(level: Level): boolean {
    return level <= this.options.level;
  }

  error(msg: string, fields?: Fields): void {
    this.#write(Level.error, msg, fields);
  }
  warn(msg: string, fields?: Fields): void {
    this.#write(Level.warn, msg, fields);
  }
  info(msg: string, fields?: Fields): void {
    this.#write(Level.info, msg, fields);
  }
  debug(msg: string, fields?: Fields): void {
    this.#write(Level.debug, msg, fields);
  }
  /** A line at a level chosen at run time. */
  at(level: Level, msg: string, fields?: Fields): void {
    this.#write(level, msg, fields);
  }

  /** Closes and opens the log file again (after logrotate moved it). */
  reopen(): void {
    this.close();
    if (!this.options.file) return;
    try {
      this.#fd = openSync(this.options.file, "a");
    } catch (err) {
      this.#fd = null;
      // In the configured format (JSON too); with no file open it goes to stdout only.
      this.#write(Level.warn, `cannot open logfile ${this.options.file}: ${errMsg(err)}`);
    }
  }

  close(): void {
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
  }

  #write(level: Level, msg: string, fields?: Fields): void {
    if (level > this.options.level) return;
    // Client-chosen text (jids, service names) must not drive the operator's
    // terminal: control characters are escaped in both formats.
    const line = this.options.format === "json"
      ? escapeControls(
        JSON.stringify({ time: new Date().toISOString(), level: NAMES[level], msg, ...fields }),
      ) + "\n"
      : `[${stamp()}] [${NAMES[level]}] ${escapeControls(msg)}${textFields(fields)}\n`;
    this.#out(line);
  }

  #out(line: string): void {
    const bytes = this.#enc.encode(line);
    if (this.options.stdout) writeAll(1, bytes);
    if (this.#fd !== null) writeAll(this.#fd, bytes);
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  try {
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off);
  } catch {
    // A full disk or a closed stdout must not take the server down.
  }
}

function stamp(): string {
  return new Date().toISOString();
}

// C0 and C1 controls, DEL, and the Unicode line separators: matching them is the point.
// deno-lint-ignore no-control-regex
const CONTROLS = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/g;
// Values shown in quotes: those with spaces, quotes, backslashes or controls.
// deno-lint-ignore no-control-regex
const QUOTED = /[\s"\\\x00-\x1f\x7f-\x9f\u2028\u2029]/;

/** `text` with every control character written as a \uXXXX escape. */
function escapeControls(text: string): string {
  return text.replace(CONTROLS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

function textFields(fields?: Fields): string {
  if (!fields) return "";
  let s = "";
  for (const [k, v] of Object.entries(fields)) {
    if (v !== undefined) {
      s += ` ${k}=${
        typeof v === "string" && QUOTED.test(v) ? escapeControls(JSON.stringify(v)) : v
      }`;
    }
  }
  return s;
}

/** The message of any thrown value. */
export function errMsg(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A logger that writes nothing (tests, subcommands). */
export function silentLogger(): Logger {
  return new Logger({ level: -1, format: "text", file: "", stdout: false });
}
