import type { NetCtx } from '../../infrastructure/context.js';

export async function offeringIdByName(ctx: NetCtx, name: string): Promise<string> {
  const o = await ctx.tx
    .selectFrom('network_offerings')
    .select('uuid')
    .where('name', '=', name)
    .executeTakeFirstOrThrow();
  return o.uuid;
}
