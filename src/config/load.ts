// Reads conf.json, checks every key's type against the defaults and applies
// flag overrides. Wrong types refuse to start (naming file and key); unknown
// keys only warn, so that configs written for Go sara still load.

import { ConfigError } from "../errors.ts";
import { type Config, defaultConfig, DEFAULTS } from "./config.ts";
import { errMsg } from "../log.ts";

/** A loaded config and the warnings worth printing once the logger exists. */
export interface Loaded {
  config: Config;
  warnings: string[];
}

const INT_MIN: Partial<Record<keyof Config, number>> = {
  port: 0,
  wsport: 0,
  tlsport: 0,
  wssport: 0,
  rpcport: 0,
  dbpool: 1,
  callback_timeout: 1,
  loglevel: 0,
  login_timeout: 1,
  idle_timeout: 1,
  startup_timeout: 1,
  offline_expire: 1,
  offline_max: 1,
  offline_max_bytes: 1,
  max_packet: 64,
  max_conns: 1,
  rate_limit: 1,
  out_queue_bytes: 1024,
  dedup_ids: 0,
  rpc_max_body: 1024,
  max_sessions: 1,
};

const ENUMS: Partial<Record<keyof Config, readonly string[]>> = {
  logformat: ["text", "json"],
  offline_delivery: ["delay", "packets"],
};

/**
 * Loads `path`. With `required` false (the default path was not given on the
 * command line) a missing file means "run on defaults" with one warning.
 */
export async function loadConfig(path: string, required: boolean): Promise<Loaded> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (!required && err instanceof Deno.errors.NotFound) {
      return {
        config: defaultConfig(),
        warnings: [`config file ${path} not found, running on defaults`],
      };
    }
    throw new ConfigError(`cannot read config file ${path}: ${errMsg(err)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not JSON: ${errMsg(err)}`);
  }
  return parseConfig(json, path);
}

/** Validates a parsed config object; `source` names it in messages. */
export function parseConfig(json: unknown, source: string): Loaded {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ConfigError(`config file ${source} must hold one JSON object`);
  }
  const config = defaultConfig();
  const warnings: string[] = [];
  for (const [key, value] of Object.entries(json)) {
    if (!(key in DEFAULTS)) {
      warnings.push(`config file ${source}: unknown key "${key}" ignored`);
      continue;
    }
    setKey(config, key as keyof Config, value, source);
  }
  return { config, warnings };
}

/** Sets one key from a flag or file, checking its type the same way. */
export function setKey(config: Config, key: keyof Config, value: unknown, source: string): void {
  const want = DEFAULTS[key];
  const bad = (what: string) =>
    new ConfigError(`${source}: key "${key}" must be ${what}, got ${JSON.stringify(value)}`);
  if (typeof want === "number") {
    if (typeof value !== "number" || !Number.isInteger(value)) throw bad("an integer");
    const min = INT_MIN[key] ?? 0;
    if (value < min) throw bad(`an integer >= ${min}`);
    if (key.endsWith("port") && value > 65535) throw bad("a port number (0-65535)");
  } else if (typeof want === "boolean") {
    if (typeof value !== "boolean") throw bad("true or false");
  } else if (typeof want === "string") {
    if (typeof value !== "string") throw bad("a string");
    const allowed = ENUMS[key];
    if (allowed && !allowed.includes(value)) throw bad(`one of ${allowed.join(", ")}`);
  } else if (key === "offline_policy") {
    checkPolicy(value, bad);
  }
  (config as unknown as Record<string, unknown>)[key] = value;
}

function checkPolicy(value: unknown, bad: (what: string) => ConfigError): void {
  const what = 'an object of message type to "first", "last" or "all"';
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw bad(what);
  for (const [type, policy] of Object.entries(value)) {
    if (!/^\d+$/.test(type) || !["first", "last", "all"].includes(policy as string)) {
      throw bad(what);
    }
  }
}
