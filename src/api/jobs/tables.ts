import type { Generated } from 'kysely';

export interface JobTables {
  async_jobs: {
    id: Generated<number>;
    uuid: string;
    command: string;
    /** The validated request parameters (raw strings), JSON. */
    params: string;
    user_id: number;
    account_id: number;
    domain_id: number;
    /** 0 pending/running, 1 succeeded, 2 failed (CloudStack's JobInfo.Status ordinals). */
    status: number;
    result_code: number;
    /** The job result (`jobresult`), JSON. */
    result: string | null;
    instance_type: string | null;
    instance_id: string | null;
    /** The server that holds the job while running it, until lease_until (epoch ms). */
    lease_owner: string | null;
    lease_until: number | null;
    attempts: number;
    created: number;
    completed: number | null;
  };
}
