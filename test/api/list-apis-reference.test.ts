/**
 * listApis tells clients what stacknet serves, and cmk builds its completion and required-parameter checks from
 * it: for every command that CloudStack 4.18 also has, what listApis says must be what CloudStack's own listApis
 * says (isasync, each parameter's type and required flag, the response fields). Parameters stacknet does not act
 * on are left out rather than advertised; a command CloudStack lacks must describe itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { buildRegistry } from '../../src/api/registry.js';
import { apiJson } from '../../src/api/list-apis.js';

interface RefParam {
  name: string;
  type: string;
  required: boolean;
}
interface RefField {
  name?: string;
}
interface RefApi {
  name: string;
  isasync: boolean;
  params: RefParam[];
  response: RefField[];
}

const reference = new Map(
  (
    JSON.parse(
      readFileSync(new URL('../../../shared/reference/cloudstack-4.18-apis.json', import.meta.url), 'utf8'),
    ) as { api: RefApi[] }
  ).api.map((a) => [a.name, a]),
);

test('listApis matches CloudStack 4.18 for every command both serve', () => {
  const problems: string[] = [];
  for (const c of buildRegistry().all()) {
    const listed = apiJson(c) as unknown as {
      isasync: boolean;
      description: string;
      params: { name: string; type: string; required: boolean }[];
      response: { name: string }[];
    };
    const ref = reference.get(c.name);
    if (!ref) {
      if (!listed.description) problems.push(`${c.name}: not CloudStack's and no description`);
      continue;
    }
    if (listed.isasync !== ref.isasync)
      problems.push(`${c.name}: isasync ${listed.isasync}, CloudStack ${ref.isasync}`);
    const refParams = new Map(ref.params.map((p) => [p.name, p]));
    for (const p of listed.params) {
      const r = refParams.get(p.name);
      if (!r) problems.push(`${c.name}: parameter ${p.name} is not CloudStack's`);
      else {
        if (p.type !== r.type)
          problems.push(`${c.name}: ${p.name} is listed as ${p.type}, CloudStack ${r.type}`);
        if (p.required !== r.required)
          problems.push(`${c.name}: ${p.name} required=${p.required}, CloudStack required=${r.required}`);
      }
    }
    // A parameter CloudStack requires must be served (and so listed): a client always sends it.
    for (const r of ref.params)
      if (r.required && !listed.params.some((p) => p.name === r.name))
        problems.push(`${c.name}: CloudStack's required parameter ${r.name} is not served`);
    const names = (fields: { name?: string }[]) =>
      fields
        .map((f) => f.name)
        .filter((n): n is string => n !== undefined)
        .sort();
    if (listed.response.length === 0 && ref.response.length > 0)
      problems.push(`${c.name}: lists no response fields (add it to src/api/reference/generate.ts)`);
    if (JSON.stringify(names(listed.response)) !== JSON.stringify(names(ref.response)))
      problems.push(`${c.name}: response fields differ from CloudStack's`);
  }
  assert.deepEqual(problems, []);
});
