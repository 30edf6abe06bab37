// The seed's two-letter options and checked numbers.

import assert from "node:assert/strict";
import { expandShortOptions, numberOption } from "../../src/bench/cli_args.ts";

Deno.test("expandShortOptions() maps -mg and -ms, with or without =", () => {
  const map = { mg: "messagegap", ms: "messagesize" };
  assert.deepEqual(
    expandShortOptions(["-t", "5", "-mg", "2", "-ms=3", "--total", "1", "-xy"], map),
    ["-t", "5", "--messagegap", "2", "--messagesize=3", "--total", "1", "-xy"],
  );
});

Deno.test("numberOption() names the option when a value is bad or out of range", () => {
  assert.equal(numberOption("n", undefined, 7, 1, 10), 7);
  assert.equal(numberOption("n", "0.5", 7, 0, 10, false), 0.5);
  assert.throws(() => numberOption("total", "abc", 7, 1, 10), /--total: "abc" is not an integer/);
  assert.throws(() => numberOption("total", "1.5", 7, 1, 10), /not an integer/);
  assert.throws(() => numberOption("total", "11", 7, 1, 10), /--total: 11 is outside 1..10/);
});
