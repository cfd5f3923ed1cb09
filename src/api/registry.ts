/**
 * The commands stacknet serves. Each concern exports `commands: AnyCommand[]`; add its module here (one line)
 * and the API, validation and listApis pick its commands up.
 */
import { commands as accountCommands } from '../accounts/commands.js';
import { commands as configurationCommands } from '../configuration/commands.js';
import { commands as eventCommands } from '../events/commands.js';
import type { AnyCommand, ParamSpec, RoleType } from './command.js';
import { referenceApis } from './reference/cloudstack-4.18.generated.js';
import type { ReferenceField } from './reference/reference-types.js';
import { commands as sessionCommands } from './session-commands.js';
import { commands as jobCommands } from './jobs/commands.js';
import { listApisCommand } from './list-apis.js';
import { internalIdTable } from './params.js';
import { commands as vmCommands } from '../vms/commands.js';
import { commands as routerCommands } from '../routers/commands.js';
import { commands as keypairCommands } from '../vms/keypair-commands.js';
import { commands as vmListCommands } from '../vms/list-commands.js';
import { commands as vmChangeServiceCommands } from '../vms/change-service.js';
import { commands as infrastructureCommands } from '../infrastructure/commands.js';
import { commands as offeringCommands } from '../offerings/commands.js';
import { commands as networkCommands } from '../networks/commands.js';
import { commands as networkAclCommands } from '../network-acls/commands.js';
import { commands as publicIpCommands } from '../public-ips/commands.js';
import { commands as ruleCommands } from '../rules/commands.js';
import { commands as lbCommands } from '../lb/commands.js';
import { commands as internalLbCommands } from '../lb/internal-commands.js';
import { commands as capacityCommands } from '../capacity/commands.js';
import { commands as uiCommands } from '../ui/commands.js';
import { commands as tagCommands } from '../tags/commands.js';
import { providerCommands } from '../infrastructure/service-providers.js';
import { commands as hostCommands } from '../hosts/commands.js';
import { commands as alertCommands } from '../alerts/commands.js';
import { commands as projectCommands } from '../projects/commands.js';
import { commands as diagnosticsCommands } from '../diagnostics/commands.js';
import { commands as doctorCommands } from '../doctor/commands.js';

export const commandModules: readonly (readonly AnyCommand[])[] = [
  sessionCommands,
  jobCommands,
  accountCommands,
  configurationCommands,
  eventCommands,
  infrastructureCommands,
  providerCommands,
  offeringCommands,
  networkCommands,
  networkAclCommands,
  publicIpCommands,
  ruleCommands,
  lbCommands,
  internalLbCommands,
  capacityCommands,
  vmCommands,
  routerCommands,
  keypairCommands,
  vmListCommands,
  uiCommands,
  tagCommands,
  vmChangeServiceCommands,
  hostCommands,
  alertCommands,
  projectCommands,
  diagnosticsCommands,
  doctorCommands,
];

export interface ResolvedParam extends ParamSpec {
  name: string;
  description: string;
  length: number;
  related?: string;
  since?: string;
}

/** A command with everything listApis and validation need filled in from the CloudStack reference. */
export interface ResolvedCommand {
  def: AnyCommand;
  name: string;
  isAsync: boolean;
  description: string;
  related: string;
  since?: string;
  params: Record<string, ParamSpec>;
  paramDocs: ResolvedParam[];
  response: readonly ReferenceField[];
}

export interface CommandRegistry {
  get(name: string): ResolvedCommand | undefined;
  /** The command if `role` may call it: anything else answers as an unknown command. */
  forRole(name: string, role: RoleType): ResolvedCommand | undefined;
  all(): readonly ResolvedCommand[];
}

export function resolveCommand(def: AnyCommand): ResolvedCommand {
  const ref = referenceApis[def.name];
  if (!ref && !def.description)
    throw new Error(`command ${def.name} is not CloudStack's: give it a description`);
  const params: Record<string, ParamSpec> = {};
  const paramDocs: ResolvedParam[] = [];
  for (const [name, spec] of Object.entries(def.params as Record<string, ParamSpec>)) {
    const doc = ref?.params[name];
    const length = spec.length ?? doc?.length ?? 255;
    // CloudStack's UUID parameters without a `since` predate UUIDs and also take the entity's internal id.
    const takesIds = spec.type === 'uuid' || (spec.type === 'list' && spec.items === 'uuid');
    const table =
      ref && doc && !doc.since && takesIds ? internalIdTable(def.name, name, doc.related) : undefined;
    params[name] = table ? { ...spec, length, internalIdTable: table } : { ...spec, length };
    paramDocs.push({
      ...spec,
      name,
      length,
      description: spec.description ?? doc?.description ?? '',
      related: doc?.related,
      since: doc?.since,
    });
  }
  return {
    def,
    name: def.name,
    isAsync: def.isAsync ?? ref?.isasync ?? false,
    description: def.description ?? ref!.description,
    related: ref?.related ?? '',
    since: ref?.since,
    params,
    paramDocs,
    response: def.response ?? ref?.response ?? [],
  };
}

export function buildRegistry(modules: readonly (readonly AnyCommand[])[] = commandModules): CommandRegistry {
  const byName = new Map<string, ResolvedCommand>();
  const all = [...modules.flat(), listApisCommand(() => registry)];
  for (const def of all) {
    if (byName.has(def.name)) throw new Error(`command ${def.name} is defined twice`);
    byName.set(def.name, resolveCommand(def));
  }
  const sorted = [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  const registry: CommandRegistry = {
    get: (name) => byName.get(name),
    forRole: (name, role) => {
      const c = byName.get(name);
      return c && (c.def.public || c.def.roles.includes(role)) ? c : undefined;
    },
    all: () => sorted,
  };
  return registry;
}
