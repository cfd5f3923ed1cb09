/**
 * How the cloudstack-go SDK, under Terraform's CloudStack provider, reads answers: the checks the terraform-*-cs
 * tests share. The SDK decodes with Go's encoding/json, so a field of the wrong JSON type fails the whole call;
 * its Get…ByID helpers take `count` 0 (or the "entity does not exist" text) as "gone".
 */
import assert from 'node:assert/strict';
import { ok, refused } from '../api/harness.js';
import type { CsClient } from '../api/harness.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

export const job = { fetch_result: true };
/** An async call sent as a form POST, as the SDK sends its rule, ACL and static NAT commands. */
export const postJob = { fetch_result: true, method: 'post' };

/** Asserts `o` carries every field in `fields` with a non-empty value. */
export function carries(o: any, fields: string[], what: string) {
  for (const f of fields)
    assert.ok(o?.[f] !== undefined && o[f] !== '', `${what} lacks ${f}: ${JSON.stringify(o)}`);
}

/** Asserts each named field, when present, has the JSON type the SDK's struct declares for it. */
export function typed(o: any, types: Record<string, 'string' | 'number' | 'boolean'>, what: string) {
  for (const [f, t] of Object.entries(types))
    if (o?.[f] !== undefined)
      assert.equal(typeof o[f], t, `${what}: ${f} is not a ${t}: ${JSON.stringify(o)}`);
}

/** The provider's reads and deletes of one user's resources. */
export function sdkSteps(client: CsClient) {
  return {
    /** retrieveID: a name looked up with list…(name=…), the exact match's id. */
    async idByName(command: string, key: string, name: string) {
      const r = ok(await client(command, { name }), `${command} name=${name}`);
      const hit = (r[key] ?? []).filter((o: any) => o.name === name);
      assert.equal(hit.length, 1, `${command} name=${name}: ${JSON.stringify(r)}`);
      assert.match(hit[0].id, /^[0-9a-f-]{36}$/);
      return hit[0].id as string;
    },

    /** Get…ByID: exactly one match, with `count` 1. */
    async byId(command: string, key: string, id: string, extra: Record<string, unknown> = {}) {
      const r = ok(await client(command, { id, ...extra }), `${command} id=${id}`);
      assert.equal(r.count, 1, `${command} id=${id}: ${JSON.stringify(r)}`);
      assert.equal(r[key]?.length, 1, `${command} id=${id}: ${JSON.stringify(r)}`);
      return r[key][0];
    },

    /**
     * Get…ByID on an object deleted outside Terraform: no match, and none on the retry with projectid=-1
     * either, so the provider drops it from its state.
     */
    async goneFromReads(command: string, id: string) {
      for (const extra of [{}, { projectid: -1 }]) {
        const r = ok(await client(command, { id, ...extra }), `${command} id (${JSON.stringify(extra)})`);
        assert.equal(r.count ?? 0, 0, `${command} still finds ${id}: ${JSON.stringify(r)}`);
      }
    },

    /** A delete of something already gone answers the text the provider's delete treats as success. */
    async alreadyGone(command: string, id: string, how: { fetch_result: boolean; method?: string } = job) {
      const e = refused(await client(command, { id }, how), 431, /.*/, `${command} again`);
      assert.ok(
        (e.errortext ?? '').includes(
          `Invalid parameter id value=${id} due to incorrect long value format, or entity does not exist`,
        ),
        `${command}: ${e.errortext}`,
      );
    },
  };
}
