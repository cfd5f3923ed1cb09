/** `--name value`, `--name=value` and bare `--flag` (true) options, as the agents' commands take them. */
export type Flags = Map<string, string | true>;

export function parseFlags(args: string[], usage: string): Flags {
  const out: Flags = new Map();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument '${a}'\n\n${usage}`);
    const eq = a.indexOf('=');
    if (eq > 0) out.set(a.slice(2, eq), a.slice(eq + 1));
    else if (args[i + 1] !== undefined && !args[i + 1]!.startsWith('--')) out.set(a.slice(2), args[++i]!);
    else out.set(a.slice(2), true);
  }
  return out;
}

/** The option's value; an option given without one is an error. */
export function flagValue(m: Flags, k: string): string | undefined {
  const v = m.get(k);
  if (v === true) throw new Error(`--${k} needs a value`);
  return v;
}
