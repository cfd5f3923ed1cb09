/**
 * listDiskOfferings: CloudStack's default disk offerings (Small 5 GB, Medium 20 GB, Large 100 GB and Custom) as a
 * built-in catalogue. stacknet attaches no data disks (a VM has only its ROOT volume), so there is no
 * createDiskOffering; the catalogue is what clients that list offerings before asking for a disk find. Ids are
 * derived from the names, the same on every server.
 */
import { allRoles, defineCommand, listResult, refParams } from '../api/command.js';
import type { AnyCommand } from '../api/command.js';
import { pageArray, pageOf } from '../api/list.js';
import { stableUuid } from './os-types.js';

interface DiskOffering {
  name: string;
  displayText: string;
  /** GB; 0 for the customized offering, whose size the disk's request names. */
  diskSize: number;
}

const catalogue: readonly DiskOffering[] = [
  { name: 'Small', displayText: 'Small Disk, 5 GB', diskSize: 5 },
  { name: 'Medium', displayText: 'Medium Disk, 20 GB', diskSize: 20 },
  { name: 'Large', displayText: 'Large Disk, 100 GB', diskSize: 100 },
  { name: 'Custom', displayText: 'Custom Disk', diskSize: 0 },
];

const offerings = catalogue.map((o) => ({ ...o, id: stableUuid(`disk-offering:${o.name}`) }));

const listDiskOfferings = defineCommand({
  name: 'listDiskOfferings',
  roles: allRoles,
  params: refParams('listDiskOfferings', [
    'id',
    'name',
    'keyword',
    'zoneid',
    'domainid',
    'isrecursive',
    'listall',
    'encrypt',
    'page',
    'pagesize',
  ]),
  async handler(p, ctx) {
    // The built-in offerings are public (every domain, every zone) and none encrypts its disks.
    const found = offerings.filter(
      (o) =>
        (p.id === undefined || o.id === p.id) &&
        (p.name === undefined || o.name === p.name) &&
        (p.keyword === undefined ||
          `${o.name} ${o.displayText}`.toLowerCase().includes(p.keyword.toLowerCase())) &&
        p.encrypt !== true,
    );
    const page = pageArray(found, await pageOf(ctx.store.db, p));
    return listResult(
      'diskoffering',
      page.map((o) => ({
        id: o.id,
        name: o.name,
        displaytext: o.displayText,
        disksize: o.diskSize,
        iscustomized: o.diskSize === 0,
        iscustomizediops: false,
        storagetype: 'shared',
        provisioningtype: 'thin',
        cacheMode: 'none',
        displayoffering: true,
        disksizestrictness: false,
        encrypt: false,
        hasannotations: false,
      })),
      found.length,
    );
  },
});

export const commands: AnyCommand[] = [listDiskOfferings];
