// Argument helpers shared by `sara makeconn` and `sara bench`: the seed's
// two-letter short options, and numbers checked against their ranges.

/**
 * Rewrites two-letter short options (`-mg 5`, `-mg=5`) to their long names,
 * since node:util parseArgs only knows one-letter short options.
 */
export function expandShortOptions(args: string[], map: Record<string, string>): string[] {
  return args.map((a) => {
    const m = /^-([a-z]{2,})(=.*)?$/.exec(a);
    const long = m ? map[m[1]!] : undefined;
    return long === undefined ? a : `--${long}${m![2] ?? ""}`;
  });
}

/** A number option within [min, max]; throws a RangeError naming the option otherwise. */
export function numberOption(
  name: string,
  text: string | undefined,
  fallback: number,
  min: number,
  max: number,
  integer = true,
): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new RangeError(
      `Option --${name}: "${text}" is not ${integer ? "an integer" : "a number"}`,
    );
  }
  if (n < min || n > max) {
    throw new RangeError(`Option --${name}: ${n} is outside ${min}..${max}`);
  }
  return n;
}
