/**
 * The doctor's result: an ordered list of steps, each OK / FAIL / SKIP with its evidence and, on FAIL, what to
 * do. Shared by the API commands (src/doctor/commands.ts) and the CLI (src/cli/doctor-command.ts), which prints
 * it with `formatDiagnosis`. PURE.
 */
export type StepStatus = 'OK' | 'FAIL' | 'SKIP';

export interface Step {
  step: string;
  status: StepStatus;
  evidence: string;
  /** What to do (on FAIL; on SKIP why it does not apply is in `evidence`). */
  advice?: string;
}

export interface BrokenVm {
  id: string;
  name: string;
  /** The first step of its chain that breaks. */
  step: string;
  evidence: string;
}

export interface Diagnosis {
  target: 'vm' | 'network';
  id: string;
  name: string;
  steps: Step[];
  /** The first FAIL's step, or null when nothing failed. */
  firstFailure: string | null;
  /** Network doctor: the VMs whose chain breaks (first broken link each). */
  brokenVms?: BrokenVm[];
  durationMs: number;
}

export const ok = (step: string, evidence: string): Step => ({ step, status: 'OK', evidence });
export const skip = (step: string, evidence: string): Step => ({ step, status: 'SKIP', evidence });
export const fail = (step: string, evidence: string, advice: string): Step => ({
  step,
  status: 'FAIL',
  evidence,
  advice,
});

export function finish(
  d: Omit<Diagnosis, 'firstFailure' | 'durationMs'>,
  startedAt: number,
  now: number,
): Diagnosis {
  return {
    ...d,
    firstFailure: d.steps.find((s) => s.status === 'FAIL')?.step ?? null,
    durationMs: Math.round(now - startedAt),
  };
}

/** `OK|FAIL|SKIP  <step>  <evidence>`, and `  -> <advice>` under a FAIL: what `stacknet doctor` prints. */
export function formatDiagnosis(d: Diagnosis): string {
  const width = Math.max(...d.steps.map((s) => s.step.length));
  const lines = [`doctor ${d.target} ${d.name} (${d.id})`];
  for (const s of d.steps) {
    lines.push(`${s.status.padEnd(4)}  ${s.step.padEnd(width)}  ${s.evidence}`);
    if (s.status === 'FAIL' && s.advice) lines.push(`      ${''.padEnd(width)}  -> ${s.advice}`);
  }
  for (const b of d.brokenVms ?? []) lines.push(`  broken: ${b.name} (${b.id}) at ${b.step}: ${b.evidence}`);
  lines.push(
    d.firstFailure
      ? `first broken link: ${d.firstFailure} (${d.durationMs} ms)`
      : `all links OK (${d.durationMs} ms)`,
  );
  return lines.join('\n');
}
