// The netns toolkit: build test data planes (and, later, the management server's netns driver) from Linux
// network namespaces. See README.md.
export * from './exec.js';
export * from './names.js';
export * from './links.js';
export * from './dhcp-clients.js';
export * from './probes.js';
export * from './eventually.js';
export * from './test-net.js';
export { cleanupStale } from './cleanup-stale.js';
export * from './dhcp-wire.js';
export * from './dhcp-probe.js';
export * from './rogue-guest.js';
