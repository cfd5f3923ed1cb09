/**
 * What the server does with each answered request and each finished job: count it (src/metrics) and log it
 * once, as structured fields (src/logging). Wired by buildServer; both are optional.
 */
import type { RequestObservation } from '../api/api-server.js';
import type { FinishedJob } from '../api/jobs/runner.js';
import type { Logger } from '../logging/logger.js';
import type { ServerMetrics } from '../metrics/server-metrics.js';

const ms = (seconds: number): number => Math.round(seconds * 1e6) / 1e3;

export function observeRequests(
  metrics: ServerMetrics | undefined,
  logger: Logger | undefined,
): ((o: RequestObservation) => void) | undefined {
  if (!metrics && !logger) return undefined;
  const log = logger?.child({ component: 'api' });
  return (o) => {
    metrics?.request(o.command, o.errorcode, o.seconds);
    if (!log) return;
    const c = o.caller;
    const fields = {
      command: o.command,
      errorcode: o.errorcode,
      durationMs: ms(o.seconds),
      account: c?.accountName,
      user: c?.username,
      domain: c?.domainPath,
      jobid: o.jobId,
      remote: o.remoteAddress,
      errortext: o.errortext,
    };
    // An internal error is the operator's to look at; every other answer is the caller's business.
    if (o.errorcode === 530) log.error(fields, 'api request');
    else log.info(fields, 'api request');
  };
}

export function observeJobs(
  metrics: ServerMetrics | undefined,
  logger: Logger | undefined,
): ((j: FinishedJob) => void) | undefined {
  if (!metrics && !logger) return undefined;
  const log = logger?.child({ component: 'jobs' });
  return (j) => {
    metrics?.job(j.command, j.ok, j.seconds);
    if (!log) return;
    const fields = {
      jobid: j.uuid,
      command: j.command,
      result: j.ok ? 'succeeded' : 'failed',
      errorcode: j.resultCode,
      durationMs: ms(j.seconds),
      attempt: j.attempt,
      errortext: j.errortext,
    };
    if (j.resultCode === 530) log.error(fields, 'job finished');
    else log.info(fields, 'job finished');
  };
}
