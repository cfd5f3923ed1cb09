/** Settings of hosts and the `hosts` driver (src/hosts): CloudStack's agent ping settings and stacknet's own. */
import { oneOf, positive, s } from './setting-definition.js';

const am = 'AgentManager';

export const hostSettings = [
  s(
    'ping.interval',
    'Integer',
    '60',
    'global',
    am,
    'Seconds between heartbeats of a host agent; a host silent for ping.interval x ping.timeout is Disconnected, one interval more Down',
    { check: positive, acted: true },
  ),
  s(
    'ping.timeout',
    'Float',
    '2.5',
    'global',
    am,
    'Multiplier of ping.interval before announcing a host agent has timed out (Disconnected; Down one ping.interval later, its routers rebuilt on another host)',
    { check: positive, acted: true },
  ),
  s(
    'host.registration.token',
    'String',
    '',
    'global',
    am,
    'The token a host agent registers with (stacknet host token prints it, creating one when empty); empty: no host can register',
    { category: 'Secure', acted: true },
  ),
  s(
    'stacknet.host.vm.wait',
    'Integer',
    '30',
    'global',
    am,
    'Seconds a VM start, stop or destroy waits for its host to report the VM in that state before the job fails',
    { check: positive, acted: true },
  ),
  s(
    'stacknet.host.vm.backend',
    'String',
    'libvirt',
    'global',
    am,
    'How hosts run VMs when they offer it: libvirt (domains) or netns (light VMs: a namespace with a DHCP client, for tests)',
    { acted: true, kind: 'Select', options: 'libvirt,netns', check: oneOf('libvirt', 'netns') },
  ),
  s(
    'stacknet.template.default.url',
    'String',
    '',
    'zone',
    am,
    'The file:// or http(s):// URL hosts fetch a template from when the template has none of its own',
    { acted: true },
  ),
  s(
    'stacknet.template.default.format',
    'String',
    'kernel-initrd',
    'zone',
    am,
    'The format of stacknet.template.default.url: kernel-initrd (a directory or tar with vmlinuz and initrd.img) or qcow2',
    { acted: true, kind: 'Select', options: 'kernel-initrd,qcow2', check: oneOf('kernel-initrd', 'qcow2') },
  ),
] as const;
