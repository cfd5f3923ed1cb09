/** listApis: the commands the caller may use, in CloudStack's listApis shape (so `cmk sync` accepts it). */
import { allRoles, defineCommand, listResult, refParams } from './command.js';
import type { AnyCommand, ResponseObject } from './command.js';
import type { CommandRegistry, ResolvedCommand } from './registry.js';
import type { ReferenceField } from './reference/reference-types.js';
import { invalidParameter } from '../errors/catalogue.js';

function fieldJson(f: ReferenceField): ResponseObject {
  const o: ResponseObject = { name: f.name, description: f.description, type: f.type };
  if (f.response && f.response.length > 0) o.response = f.response.map(fieldJson);
  return o;
}

export function apiJson(c: ResolvedCommand): ResponseObject {
  return {
    name: c.name,
    description: c.description,
    isasync: c.isAsync,
    related: c.related,
    since: c.since,
    params: c.paramDocs.map((p) => ({
      name: p.name,
      description: p.description,
      type: p.listedType ?? p.type,
      length: p.length,
      required: p.required === true,
      related: p.related,
      since: p.since,
    })),
    response: c.response.map(fieldJson),
  };
}

export function listApisCommand(registry: () => CommandRegistry): AnyCommand {
  return defineCommand({
    name: 'listApis',
    roles: allRoles,
    params: refParams('listApis', ['name']),
    async handler(p, ctx) {
      const visible = registry()
        .all()
        .filter((c) => c.def.public || c.def.roles.includes(ctx.caller.role));
      const selected = p.name === undefined ? visible : visible.filter((c) => c.name === p.name);
      if (p.name !== undefined && selected.length === 0) {
        throw invalidParameter('name', p.name, 'no such API, or it is not available to the caller');
      }
      return listResult('api', selected.map(apiJson), selected.length);
    },
  });
}
