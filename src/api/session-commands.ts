/**
 * login / logout definitions: they drive validation and listApis, but the API server answers them itself
 * (they run before, and instead of, authentication; see api-server.ts).
 */
import { allRoles, defineCommand, refParams } from './command.js';
import type { AnyCommand } from './command.js';
import { internalError } from '../errors/catalogue.js';

export const loginCommand = defineCommand({
  name: 'login',
  roles: allRoles,
  public: true,
  params: {
    ...refParams('login', ['username', 'password', 'domain']),
    // CloudStack declares domainId a long (the internal id); stacknet also accepts the domain's uuid.
    domainId: {
      type: 'string',
      listedType: 'long',
      description: 'The id (or uuid) of the domain that the user belongs to',
    },
  },
  async handler() {
    throw internalError('running login outside the API server');
  },
});

export const logoutCommand = defineCommand({
  name: 'logout',
  roles: allRoles,
  public: true,
  params: {},
  async handler() {
    throw internalError('running logout outside the API server');
  },
});

export const commands: AnyCommand[] = [loginCommand, logoutCommand];
