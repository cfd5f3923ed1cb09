/**
 * CloudStack's default system offerings (offerings/defaults.ts `defaultSystemOfferings`): the one its virtual
 * routers are sized by and the one of its internal LB VMs. listServiceOfferings issystem=true lists them, and
 * listRouters / listInternalLoadBalancerVMs name them as the router's serviceofferingid when neither the network
 * offering nor the VPC offering names one. Safe to run twice (seeded by name).
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { defaultSystemOfferings } from '../../offerings/defaults.js';

export async function up(db: Kysely<unknown>): Promise<void> {
  const anyDb = db as unknown as Kysely<Record<string, Record<string, unknown>>>;
  for (const o of defaultSystemOfferings) {
    const seeded = await anyDb
      .selectFrom('service_offerings')
      .select('id')
      .where('name', '=', o.name)
      .where('is_system', '=', 1)
      .executeTakeFirst();
    if (seeded) continue;
    await anyDb
      .insertInto('service_offerings')
      .values({
        uuid: randomUUID(),
        name: o.name,
        display_text: o.displayText,
        cpu_number: o.cpuNumber,
        cpu_speed: o.cpuSpeed,
        memory: o.memory,
        is_system: 1,
        system_vm_type: o.systemVmType,
        created: Date.now(),
      })
      .execute();
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  const anyDb = db as unknown as Kysely<Record<string, Record<string, unknown>>>;
  for (const o of defaultSystemOfferings)
    await anyDb
      .deleteFrom('service_offerings')
      .where('name', '=', o.name)
      .where('is_system', '=', 1)
      .execute();
}
