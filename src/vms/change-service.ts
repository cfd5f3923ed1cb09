/**
 * changeServiceForVirtualMachine: a stopped VM takes another service offering (its CPU and memory with it, or a
 * customized offering's values from `details`). As CloudStack without dynamic scaling, a VM in any other state is
 * refused; the VR's `service-offering` metadata follows the change.
 */
import { allRoles, defineCommand, objectResult, refParams } from '../api/command.js';
import type { AnyCommand } from '../api/command.js';
import { invalidParameter } from '../errors/catalogue.js';
import { withNet } from '../infrastructure/net-context.js';
import { serviceOfferingForVm, vmSizeFor } from '../offerings/service-offerings.js';
import { convergeNetworks } from './operations.js';
import { vmResponse } from './responses.js';
import { bumpVmRouters, networksOfVm, recordVmEvent, vmForCaller } from './service.js';

const changeServiceForVirtualMachine = defineCommand({
  name: 'changeServiceForVirtualMachine',
  roles: allRoles,
  params: refParams('changeServiceForVirtualMachine', ['id', 'serviceofferingid', 'details']),
  async handler(p, ctx) {
    const vm = await withNet(ctx, async (n) => {
      const v = await vmForCaller(n, p.id);
      if (v.state !== 'Stopped')
        throw invalidParameter(
          'id',
          p.id,
          `Unable to upgrade virtual machine ${v.name} in state ${v.state}; make sure the virtual machine is stopped`,
        );
      const zone = await n.tx
        .selectFrom('zones')
        .select(['id', 'name'])
        .where('id', '=', v.zone_id)
        .executeTakeFirstOrThrow();
      const so = await serviceOfferingForVm(
        n.tx,
        p.serviceofferingid,
        { domainId: Number(v.domain_id) },
        zone,
      );
      if (Number(v.service_offering_id) === Number(so.id) && so.customized !== 1)
        throw invalidParameter(
          'serviceofferingid',
          p.serviceofferingid,
          `not upgrading VM ${v.name}: it already has service offering ${so.name}`,
        );
      const size = vmSizeFor(so, p.details);
      await n.tx
        .updateTable('vms')
        .set({
          service_offering_id: so.id,
          cpu_number: size.cpuNumber,
          cpu_speed: size.cpuSpeed,
          memory: size.memory,
        })
        .where('id', '=', v.id)
        .execute();
      // The routers serve the offering's name as `service-offering` metadata.
      await bumpVmRouters(n, Number(v.id));
      await recordVmEvent(n, v, 'VM.UPGRADE', `changed to service offering ${so.name}`);
      await n.recorder.usage(n.tx, {
        type: 'VM.UPGRADE',
        accountId: Number(v.account_id),
        domainId: Number(v.domain_id),
        zoneId: Number(v.zone_id),
        resourceId: Number(v.id),
        resourceUuid: v.uuid,
        resourceName: v.name,
      });
      return v;
    });
    await convergeNetworks(ctx.store, await networksOfVm(ctx.store.db, Number(vm.id)));
    const fresh = await ctx.store.db
      .selectFrom('vms')
      .selectAll()
      .where('id', '=', vm.id)
      .executeTakeFirstOrThrow();
    return objectResult('virtualmachine', await vmResponse(ctx.store.db, fresh));
  },
});

export const commands: AnyCommand[] = [changeServiceForVirtualMachine];
