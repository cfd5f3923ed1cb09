/**
 * `STACKNET_TRACE_VMS=1`: one `[trace] {json}` line on stderr per deploy phase, reconciler pass and driver VM start
 * (epoch ms stamps), which `npm run bench:e2e` turns into each stage's share of a burst. Off: nothing is built.
 */
export type TraceHook = (event: Record<string, unknown>) => void;

export const traceVms: TraceHook | undefined =
  process.env.STACKNET_TRACE_VMS === '1'
    ? (event) => console.error(`[trace] ${JSON.stringify(event)}`)
    : undefined;
