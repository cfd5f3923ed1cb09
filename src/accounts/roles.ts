/**
 * CloudStack's built-in roles. stacknet has no custom roles: the three role types with fixed ids, so
 * `roleid` in createAccount and `roleid`/`rolename`/`roletype` in responses work as CloudStack clients expect.
 */
import type { RoleType } from '../api/command.js';

export interface Role {
  uuid: string;
  name: string;
  type: RoleType;
  accountType: 0 | 1 | 2;
}

export const roles: readonly Role[] = [
  { uuid: '5d1d6c68-43a5-11ee-8f3d-000000000001', name: 'Root Admin', type: 'Admin', accountType: 1 },
  { uuid: '5d1d6c68-43a5-11ee-8f3d-000000000003', name: 'Domain Admin', type: 'DomainAdmin', accountType: 2 },
  { uuid: '5d1d6c68-43a5-11ee-8f3d-000000000004', name: 'User', type: 'User', accountType: 0 },
];

export function roleForAccountType(type: number): Role {
  return roles.find((r) => r.accountType === type) ?? roles[2]!;
}

export function roleByUuid(uuid: string): Role | undefined {
  return roles.find((r) => r.uuid === uuid.toLowerCase());
}
