/** Resource tags (migration 0013-resource-tags): key/value pairs on taggable resources, CloudStack's resource_tags. */
import type { Generated } from 'kysely';

export interface ResourceTagsTable {
  id: Generated<number>;
  uuid: string;
  key: string;
  value: string;
  /** CloudStack's resource type name: UserVm, Network, Vpc, PublicIpAddress, ... */
  resource_type: string;
  /** The resource's internal id, and its uuid as the API shows it. */
  resource_id: number;
  resource_uuid: string;
  /** The resource owner's: tags are seen by whoever sees the resource. */
  account_id: number | null;
  domain_id: number;
  customer: string | null;
  created: number;
}

export interface TagTables {
  resource_tags: ResourceTagsTable;
}
