/**
 * A VM's ROOT volume, derived from the VM rather than stored: it exists while the VM is not expunged, sized by
 * its template. stacknet attaches no data disks, so these are the only volumes.
 */
import type { ResponseObject } from '../api/command.js';
import { csDate } from '../offerings/common.js';
import { templateSizeBytes } from '../offerings/defaults.js';
import type { Executor } from '../store/db.js';
import { VM_HYPERVISOR, vmReferences } from './responses.js';
import type { VmRow } from './service.js';

// Every hex digit of the VM's uuid but the version and variant digits is XORed with this: the volume's id is
// stable, distinct from the VM's, and leads back to it without a table.
const MASK = '5a3c96e1-7b24-0000-0d8f-e1c4a7b35f96';

/** The ROOT volume's id from its VM's id, and (the same involution) the VM's id from its volume's. */
export function rootVolumeUuid(vmUuid: string): string {
  return [...vmUuid.toLowerCase()]
    .map((c, i) => {
      const m = MASK[i]!;
      if (m === '-' || !/[0-9a-f]/.test(c) || i === 14 || i === 19) return c;
      return (parseInt(c, 16) ^ parseInt(m, 16)).toString(16);
    })
    .join('');
}
export const vmUuidOfRootVolume = rootVolumeUuid;

/** CloudStack's volume object of each VM's ROOT disk, in order, from a fixed number of queries. */
export async function rootVolumeResponses(ex: Executor, vms: readonly VmRow[]): Promise<ResponseObject[]> {
  if (vms.length === 0) return [];
  const refs = await vmReferences(ex, vms);
  return vms.map((vm) => {
    const { zone, acct, so, tpl } = refs(vm);
    const size = tpl ? templateSizeBytes(tpl.name) : 0;
    const destroyed = vm.state === 'Destroyed' || vm.state === 'Expunging';
    return {
      id: rootVolumeUuid(vm.uuid),
      name: `ROOT-${vm.id}`,
      type: 'ROOT',
      deviceid: 0,
      virtualmachineid: vm.uuid,
      vmname: vm.name,
      vmdisplayname: vm.display_name,
      vmstate: vm.state,
      vmtype: 'User',
      size,
      virtualsize: size,
      zoneid: zone?.uuid,
      zonename: zone?.name,
      // A destroyed VM's disk waits for the expunge, as CloudStack's Destroy state.
      state: destroyed ? 'Destroy' : 'Ready',
      destroyed,
      storagetype: 'shared',
      provisioningtype: 'thin',
      hypervisor: VM_HYPERVISOR,
      account: acct?.account,
      domainid: acct?.domainid,
      domain: acct?.domain,
      serviceofferingid: so?.uuid,
      serviceofferingname: so?.name,
      serviceofferingdisplaytext: so?.name,
      templateid: tpl?.uuid,
      templatename: tpl?.name,
      templatedisplaytext: tpl?.display_text,
      isextractable: false,
      displayvolume: true,
      supportsstoragesnapshot: false,
      quiescevm: false,
      attached: csDate(Number(vm.created)),
      created: csDate(Number(vm.created)),
      tags: [],
    };
  });
}
