/** Process settings from flags and environment (not the CloudStack global settings, which live in the DB). */
import { join, resolve } from 'node:path';

export function dataDir(): string {
  return resolve(process.env.STACKNET_DATA_DIR ?? './data');
}

export function defaultDbUrl(): string {
  return process.env.STACKNET_DB_URL ?? `sqlite:${join(dataDir(), 'stacknet.db')}`;
}
