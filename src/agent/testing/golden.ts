/** Golden files for the appliers' pure renders (`UPDATE_GOLDEN=1` rewrites them), and the context they render in. */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RenderContext } from '../appliers/applier.js';
import type { DesiredState } from '../desired-state.js';
import { baseState, hostFor } from './fixtures.js';

export function golden(testdata: string, name: string, actual: string): void {
  const file = join(testdata, `${name}.golden`);
  if (process.env.UPDATE_GOLDEN === '1') {
    mkdirSync(testdata, { recursive: true });
    writeFileSync(file, actual);
    return;
  }
  let expected: string;
  try {
    expected = readFileSync(file, 'utf8');
  } catch {
    assert.fail(`${file} is missing; run UPDATE_GOLDEN=1 npm test -- src/agent`);
  }
  assert.equal(actual, expected, `${name} differs from ${file} (UPDATE_GOLDEN=1 rewrites it)`);
}

export const goldenCtx: RenderContext = {
  dataDir: '/var/lib/vr',
  leaseDir: '/var/lib/vr',
  guestInterface: 'eth0',
  controlInterface: 'eth1',
  controlPort: 3922,
  metadataPort: 80,
  passwordPort: 8080,
};

export const redundantState = (): DesiredState =>
  baseState({
    router: {
      name: 'r-5-VM',
      guestIp: '10.1.0.2',
      redundant: { priority: 100, vrrpIntervalSeconds: 1, virtualRouterId: 5, authPass: 'pa55word' },
    },
  });

export const externalDnsState = (): DesiredState => {
  const s = baseState();
  return {
    ...s,
    network: { ...s.network, useExternalDns: true, leaseTime: 3600, ipv6Cidr: 'fd00:1::/64' },
    hosts: [{ ...hostFor(1), ipv6: 'fd00:1::11' }],
  };
};

/** The states every service's golden files are rendered from. */
export const goldenCases: Record<string, () => DesiredState> = {
  basic: () => baseState(),
  redundant: redundantState,
  'external-dns': externalDnsState,
};
