/**
 * diagnoseVirtualMachine and diagnoseNetwork: stacknet's own commands (CloudStack has none), root admin only,
 * synchronous; what `stacknet doctor` calls. Each answers `{"diagnosis": {target, id, name, healthy,
 * firstfailure, durationms, steps: [{step, status, evidence, advice}], brokenvms?}}`.
 */
import { defineCommand, objectResult, rootAdminOnly } from '../api/command.js';
import type { AnyCommand, ResponseObject } from '../api/command.js';
import type { ReferenceField } from '../api/reference/reference-types.js';
import { invalidParameter, missingParameter } from '../errors/catalogue.js';
import { netDb } from '../networks/tables.js';
import { vmRuntimeFor } from '../vms/runtime-services.js';
import { diagnoseNetwork } from './network-doctor.js';
import type { Diagnosis } from './steps.js';
import { diagnoseVm } from './vm-doctor.js';

const response: readonly ReferenceField[] = [
  { name: 'target', type: 'string', description: 'vm or network' },
  { name: 'id', type: 'string', description: 'the id of the VM or network diagnosed' },
  { name: 'name', type: 'string', description: 'its name' },
  { name: 'healthy', type: 'boolean', description: 'true when no step failed' },
  { name: 'firstfailure', type: 'string', description: 'the first step that failed (the first broken link)' },
  { name: 'durationms', type: 'long', description: 'how long the diagnosis took' },
  {
    name: 'steps',
    type: 'list',
    description: 'the links of the chain in order',
    response: [
      { name: 'step', type: 'string', description: 'the link checked' },
      { name: 'status', type: 'string', description: 'OK, FAIL or SKIP' },
      { name: 'evidence', type: 'string', description: 'what was found' },
      { name: 'advice', type: 'string', description: 'what to do (on FAIL)' },
    ],
  },
];

export function diagnosisResponse(d: Diagnosis): ResponseObject {
  return {
    target: d.target,
    id: d.id,
    name: d.name,
    healthy: d.firstFailure === null,
    firstfailure: d.firstFailure ?? undefined,
    durationms: d.durationMs,
    steps: d.steps.map((s) => ({ step: s.step, status: s.status, evidence: s.evidence, advice: s.advice })),
    ...(d.brokenVms
      ? {
          brokenvms: d.brokenVms.map((b) => ({ id: b.id, name: b.name, step: b.step, evidence: b.evidence })),
        }
      : {}),
  };
}

const diagnoseVirtualMachine = defineCommand({
  name: 'diagnoseVirtualMachine',
  roles: rootAdminOnly,
  description:
    "stacknet: walks the chain that gives a VM its address and name (database, router, desired state, applied generation, dnsmasq's files, lease, port rules, DNS, NAT) and names the first broken link with its evidence",
  params: {
    id: { type: 'uuid', description: 'the ID of the virtual machine' },
    name: { type: 'string', description: 'the name of the virtual machine (when no id is given)' },
  },
  response: [...response],
  async handler(p, ctx) {
    if (p.id === undefined && p.name === undefined) throw missingParameter('id');
    const db = ctx.store.db;
    let q = db.selectFrom('vms').selectAll().where('removed', 'is', null);
    q = p.id !== undefined ? q.where('uuid', '=', p.id) : q.where('name', '=', p.name!);
    const vms = await q.limit(3).execute();
    const what = p.id !== undefined ? 'id' : 'name';
    const value = p.id ?? p.name;
    if (vms.length === 0) throw invalidParameter(what, value, 'no virtual machine with this ' + what);
    if (vms.length > 1)
      throw invalidParameter(
        'name',
        value,
        `names ${vms.length > 2 ? 'several' : 'two'} virtual machines (${vms.map((v) => v.uuid).join(', ')}): give the id`,
      );
    const d = await diagnoseVm(db, vmRuntimeFor(ctx.store).driver, vms[0]!);
    return objectResult('diagnosis', diagnosisResponse(d));
  },
});

const diagnoseNetworkCommand = defineCommand({
  name: 'diagnoseNetwork',
  roles: rootAdminOnly,
  description:
    "stacknet: checks a network's routers, applied generation, every VM in the desired state, dnsmasq's hosts files and leases against the database, and names the VMs whose chain breaks",
  params: { id: { type: 'uuid', required: true, description: 'the ID of the network' } },
  response: [
    ...response,
    {
      name: 'brokenvms',
      type: 'list',
      description: 'the VMs whose chain breaks, with the first broken link',
      response: [
        { name: 'id', type: 'string', description: 'the VM id' },
        { name: 'name', type: 'string', description: 'the VM name' },
        { name: 'step', type: 'string', description: 'the first broken link' },
        { name: 'evidence', type: 'string', description: 'what was found' },
      ],
    },
  ],
  async handler(p, ctx) {
    const db = ctx.store.db;
    const n = await netDb(db)
      .selectFrom('networks')
      .select(['id', 'uuid', 'name'])
      .where('uuid', '=', p.id)
      .where('removed', 'is', null)
      .executeTakeFirst();
    if (!n) throw invalidParameter('id', p.id, 'no network with this id');
    const d = await diagnoseNetwork(db, vmRuntimeFor(ctx.store).driver, {
      id: Number(n.id),
      uuid: n.uuid,
      name: n.name,
    });
    return objectResult('diagnosis', diagnosisResponse(d));
  },
});

export const commands: AnyCommand[] = [diagnoseVirtualMachine, diagnoseNetworkCommand];
