// `sara setup`: writes a complete default conf.json, refusing to overwrite,
// with a fresh random `accesstoken` and `auth_secret` so that a node set up
// this way is not open (docs: SECURITY.md).

import { parseArgs } from "node:util";
import { dirname } from "node:path";
import { DEFAULT_CONFIG_PATH, DEFAULTS } from "../config/config.ts";
import { SETUP_HELP } from "./help.ts";
import { errMsg } from "../log.ts";

/** Runs `sara setup [-o PATH] [--force]`; returns the exit code. */
export async function setupCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      out: { type: "string", short: "o", default: DEFAULT_CONFIG_PATH },
      force: { type: "boolean", short: "f", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(SETUP_HELP);
    return 0;
  }
  const path = values.out;
  try {
    await Deno.mkdir(dirname(path), { recursive: true });
    const config = { ...DEFAULTS, accesstoken: randomSecret(), auth_secret: randomSecret() };
    await Deno.writeTextFile(path, JSON.stringify(config, null, 2) + "\n", {
      createNew: !values.force,
    });
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) {
      console.error(`sara setup: ${path} already exists; use --force to overwrite it`);
    } else {
      console.error(`sara setup: cannot write ${path}: ${errMsg(err)}`);
    }
    return 1;
  }
  console.log(`sara setup: wrote ${path}`);
  return 0;
}

/** 32 random bytes as hex: 256 bits, beyond guessing. */
function randomSecret(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(32)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}
