/**
 * The guest OS catalogue listOsTypes and listOsCategories answer with: CloudStack's category names and OS type
 * descriptions for the guests stacknet's templates name. stacknet has no addGuestOs, so every entry is built in
 * (`isuserdefined` false). Ids are stable across servers and restarts: derived from the name, not stored. Pure
 * data, no I/O.
 */
import { createHash } from 'node:crypto';

export interface OsCategory {
  id: string;
  name: string;
}

export interface OsType {
  id: string;
  description: string;
  categoryId: string;
  categoryName: string;
}

/** A UUID-shaped id that is the same wherever it is computed (version nibble 5, as name-based UUIDs). */
export function stableUuid(name: string): string {
  const h = createHash('sha1').update(`stacknet:${name}`).digest('hex');
  const variant = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const catalogue: Record<string, readonly string[]> = {
  CentOS: ['CentOS 5.5 (64-bit)', 'CentOS 6.10 (64-bit)', 'CentOS 7', 'CentOS 8'],
  Debian: ['Debian GNU/Linux 10 (64-bit)', 'Debian GNU/Linux 11 (64-bit)', 'Debian GNU/Linux 12 (64-bit)'],
  Oracle: ['Oracle Linux 8', 'Oracle Linux 9'],
  RedHat: [
    'Red Hat Enterprise Linux 7',
    'Red Hat Enterprise Linux 8',
    'Red Hat Enterprise Linux 9',
    'Rocky Linux 8',
    'Rocky Linux 9',
    'AlmaLinux 8',
    'AlmaLinux 9',
  ],
  SUSE: ['SUSE Linux Enterprise Server 15 (64-bit)', 'openSUSE Leap 15 (64-bit)'],
  Windows: [
    'Windows Server 2019 (64-bit)',
    'Windows Server 2022 (64-bit)',
    'Windows 10 (64-bit)',
    'Windows 11 (64-bit)',
  ],
  Ubuntu: ['Ubuntu 18.04 LTS', 'Ubuntu 20.04 LTS', 'Ubuntu 22.04 LTS', 'Ubuntu 24.04 LTS'],
  Unix: ['FreeBSD 13 (64-bit)', 'FreeBSD 14 (64-bit)'],
  Other: ['Other Linux (64-bit)', 'Other (64-bit)', 'Other Linux (32-bit)', 'Other (32-bit)'],
};

export const osCategories: readonly OsCategory[] = Object.keys(catalogue).map((name) => ({
  id: stableUuid(`oscategory:${name}`),
  name,
}));

export const osTypes: readonly OsType[] = Object.entries(catalogue).flatMap(([categoryName, types]) =>
  types.map((description) => ({
    id: stableUuid(`ostype:${description}`),
    description,
    categoryId: stableUuid(`oscategory:${categoryName}`),
    categoryName,
  })),
);

export const osTypeByDescription = (description: string): OsType | undefined =>
  osTypes.find((t) => t.description === description);
