/**
 * JSON Schema (draft-07, ajv's default) for the desired-state document and its delta. docs/desired-state.schema.json
 * and docs/desired-state-delta.schema.json are written from these objects (UPDATE_GOLDEN=1 npm test -- agent/).
 * Imports nothing, so the management server can use it too.
 */

const ipv4 = {
  type: 'string',
  pattern:
    '^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$',
} as const;
const ipv4Cidr = {
  type: 'string',
  pattern:
    '^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}/([0-9]|[12][0-9]|3[0-2])$',
} as const;
const ipv6 = { type: 'string', pattern: '^[0-9a-fA-F:.]{2,45}$' } as const;
const ipv6Cidr = {
  type: 'string',
  pattern: '^[0-9a-fA-F:.]{2,45}/([0-9]|[1-9][0-9]|1[01][0-9]|12[0-8])$',
} as const;
const mac = { type: 'string', pattern: '^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$' } as const;
// RFC 1123 label: what dnsmasq accepts as a dhcp-host name and what CloudStack allows as a VM host name.
const hostname = { type: 'string', pattern: '^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$' } as const;
const domain = {
  type: 'string',
  pattern: '^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$',
  maxLength: 253,
} as const;
const generation = { type: 'integer', minimum: 0 } as const;
const base64 = { type: 'string', pattern: '^[A-Za-z0-9+/=\\s_-]*$' } as const;
const ifname = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,14}$' } as const;
const port = { type: 'integer', minimum: 1, maximum: 65535 } as const;
const icmpField = { type: 'integer', minimum: -1, maximum: 255 } as const;
const ruleId = { type: 'string', minLength: 1, maxLength: 255 } as const;
const cidrList = { type: 'array', items: ipv4Cidr, maxItems: 256 } as const;
// tcp, udp, icmp, all, or an IP protocol number (0..255) as text.
const protocol = {
  type: 'string',
  pattern: '^(tcp|udp|icmp|all|25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$',
} as const;
/** The fields every filtering rule (firewall, egress, ACL) shares. */
const ruleMatch = {
  id: ruleId,
  protocol,
  ports: { $ref: '#/definitions/portRange' },
  icmpType: icmpField,
  icmpCode: icmpField,
} as const;

const definitions = {
  router: {
    type: 'object',
    additionalProperties: false,
    required: ['name', 'guestIp'],
    properties: {
      name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$' },
      guestIp: ipv4,
      appliance: { enum: ['internalLb'] },
      redundant: {
        type: 'object',
        additionalProperties: false,
        required: ['priority', 'vrrpIntervalSeconds', 'virtualRouterId', 'authPass'],
        properties: {
          priority: { type: 'integer', minimum: 1, maximum: 254 },
          vrrpIntervalSeconds: { type: 'number', minimum: 0.01, maximum: 255 },
          virtualRouterId: { type: 'integer', minimum: 1, maximum: 255 },
          authPass: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,8}$' },
        },
      },
    },
  },
  network: {
    type: 'object',
    additionalProperties: false,
    required: ['cidr', 'gateway', 'domain', 'dnsServers', 'useExternalDns'],
    properties: {
      cidr: ipv4Cidr,
      gateway: ipv4,
      domain,
      dnsServers: { type: 'array', items: ipv4, maxItems: 8 },
      useExternalDns: { type: 'boolean' },
      leaseTime: {
        oneOf: [
          { type: 'integer', minimum: 120 },
          { type: 'string', const: 'infinite' },
        ],
      },
      ipv6Cidr,
      ipv6Gateway: ipv6,
    },
  },
  host: {
    type: 'object',
    additionalProperties: false,
    required: ['mac', 'ipv4', 'hostname', 'defaultNic', 'vmId'],
    properties: {
      mac,
      ipv4,
      ipv6,
      hostname,
      defaultNic: { type: 'boolean' },
      vmId: { type: 'string', minLength: 1, maxLength: 255 },
    },
  },
  vmMetadata: {
    type: 'object',
    additionalProperties: false,
    required: ['metaData'],
    properties: {
      userData: base64,
      metaData: {
        type: 'object',
        propertyNames: { pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$' },
        additionalProperties: { type: 'string' },
      },
    },
  },
  firewall: {
    type: 'object',
    additionalProperties: false,
    required: ['enabled'],
    properties: { enabled: { type: 'boolean' } },
  },
  portRange: {
    type: 'object',
    additionalProperties: false,
    required: ['start', 'end'],
    properties: { start: port, end: port },
  },
  publicNic: {
    type: 'object',
    additionalProperties: false,
    required: ['interface', 'vlan', 'gateway', 'prefix', 'addresses'],
    properties: {
      interface: ifname,
      vlan: { type: 'string', pattern: '^(untagged|[0-9]{1,4})$' },
      gateway: ipv4,
      prefix: { type: 'integer', minimum: 1, maximum: 32 },
      addresses: { type: 'array', items: ipv4, minItems: 1 },
    },
  },
  staticNat: {
    type: 'object',
    additionalProperties: false,
    required: ['publicIp', 'guestIp'],
    properties: { publicIp: ipv4, guestIp: ipv4 },
  },
  public: {
    type: 'object',
    additionalProperties: false,
    required: ['nics', 'sourceNatIp', 'staticNats', 'egressDefaultAllow'],
    properties: {
      nics: { type: 'array', items: { $ref: '#/definitions/publicNic' } },
      sourceNatIp: { oneOf: [ipv4, { type: 'null' }] },
      staticNats: { type: 'array', items: { $ref: '#/definitions/staticNat' } },
      egressDefaultAllow: { type: 'boolean' },
    },
  },
  vpc: {
    type: 'object',
    additionalProperties: false,
    required: ['cidr', 'transitInterface', 'edge', 'edgeGateway', 'peers'],
    properties: {
      cidr: ipv4Cidr,
      transitInterface: ifname,
      edge: { type: 'boolean' },
      edgeGateway: { oneOf: [ipv4, { type: 'null' }] },
      peers: {
        type: 'array',
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['cidr', 'gateway'],
          properties: { cidr: ipv4Cidr, gateway: ipv4 },
        },
      },
    },
  },
  portForwardRule: {
    type: 'object',
    additionalProperties: false,
    required: ['kind', 'id', 'protocol', 'publicIp', 'publicPorts', 'guestIp', 'privatePorts', 'sourceCidrs'],
    properties: {
      kind: { const: 'portForward' },
      id: ruleId,
      protocol: { enum: ['tcp', 'udp'] },
      publicIp: ipv4,
      publicPorts: { $ref: '#/definitions/portRange' },
      guestIp: ipv4,
      privatePorts: { $ref: '#/definitions/portRange' },
      sourceCidrs: cidrList,
    },
  },
  firewallRule: {
    type: 'object',
    additionalProperties: false,
    required: ['kind', 'id', 'protocol', 'publicIp', 'sourceCidrs'],
    properties: { kind: { const: 'firewall' }, ...ruleMatch, publicIp: ipv4, sourceCidrs: cidrList },
  },
  egressRule: {
    type: 'object',
    additionalProperties: false,
    required: ['kind', 'id', 'protocol', 'sourceCidrs', 'destCidrs'],
    properties: { kind: { const: 'egress' }, ...ruleMatch, sourceCidrs: cidrList, destCidrs: cidrList },
  },
  aclRule: {
    type: 'object',
    additionalProperties: false,
    required: ['kind', 'id', 'protocol', 'number', 'action', 'traffic', 'cidrs'],
    properties: {
      kind: { const: 'acl' },
      ...ruleMatch,
      number: { type: 'integer', minimum: 0 },
      action: { enum: ['allow', 'deny'] },
      traffic: { enum: ['ingress', 'egress'] },
      cidrs: cidrList,
    },
  },
  loadBalancerRule: {
    type: 'object',
    additionalProperties: false,
    required: ['kind', 'id', 'publicIp', 'publicPort', 'privatePort', 'algorithm', 'members', 'sourceCidrs'],
    properties: {
      kind: { const: 'loadBalancer' },
      id: ruleId,
      publicIp: ipv4,
      publicPort: port,
      privatePort: port,
      algorithm: { enum: ['roundrobin', 'leastconn', 'source'] },
      members: {
        type: 'array',
        maxItems: 1024,
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['vmId', 'guestIp'],
          properties: { vmId: ruleId, guestIp: ipv4 },
        },
      },
      sourceCidrs: cidrList,
      stickiness: {
        type: 'object',
        additionalProperties: false,
        required: ['method', 'params'],
        properties: {
          method: { enum: ['LbCookie', 'AppCookie', 'SourceBased'] },
          params: {
            type: 'object',
            propertyNames: { pattern: '^[A-Za-z][A-Za-z0-9_-]{0,63}$' },
            additionalProperties: { type: 'string', pattern: '^[A-Za-z0-9_.:/-]{0,255}$' },
          },
        },
      },
      healthCheck: {
        type: 'object',
        additionalProperties: false,
        required: ['intervalSeconds', 'timeoutSeconds', 'healthyThreshold', 'unhealthyThreshold'],
        properties: {
          pingPath: { type: 'string', pattern: '^/[A-Za-z0-9_.~/%?=&-]{0,1023}$' },
          intervalSeconds: { type: 'integer', minimum: 1, maximum: 3600 },
          timeoutSeconds: { type: 'integer', minimum: 1, maximum: 3600 },
          healthyThreshold: { type: 'integer', minimum: 1, maximum: 100 },
          unhealthyThreshold: { type: 'integer', minimum: 1, maximum: 100 },
        },
      },
    },
  },
  rule: {
    type: 'object',
    required: ['kind'],
    properties: { kind: { enum: ['portForward', 'firewall', 'egress', 'acl', 'loadBalancer'] } },
    oneOf: [
      { $ref: '#/definitions/portForwardRule' },
      { $ref: '#/definitions/firewallRule' },
      { $ref: '#/definitions/egressRule' },
      { $ref: '#/definitions/aclRule' },
      { $ref: '#/definitions/loadBalancerRule' },
    ],
  },
  metadataMap: {
    type: 'object',
    propertyNames: ipv4,
    additionalProperties: { $ref: '#/definitions/vmMetadata' },
  },
  passwordMap: {
    type: 'object',
    propertyNames: ipv4,
    additionalProperties: { type: 'string', minLength: 1, maxLength: 255 },
  },
} as const;

export const desiredStateSchema = {
  $id: 'https://stacknet.local/schemas/desired-state.json',
  title: 'stacknet virtual-router desired state',
  type: 'object',
  additionalProperties: false,
  required: ['generation', 'router', 'network', 'hosts', 'metadata', 'passwords', 'firewall'],
  properties: {
    generation,
    router: { $ref: '#/definitions/router' },
    network: { $ref: '#/definitions/network' },
    hosts: { type: 'array', items: { $ref: '#/definitions/host' } },
    metadata: { $ref: '#/definitions/metadataMap' },
    passwords: { $ref: '#/definitions/passwordMap' },
    firewall: { $ref: '#/definitions/firewall' },
    public: { $ref: '#/definitions/public' },
    rules: { type: 'array', items: { $ref: '#/definitions/rule' } },
    vpc: { $ref: '#/definitions/vpc' },
  },
  definitions,
} as const;

export const desiredStateDeltaSchema = {
  $id: 'https://stacknet.local/schemas/desired-state-delta.json',
  title: 'stacknet virtual-router desired state delta',
  type: 'object',
  additionalProperties: false,
  required: ['baseGeneration', 'generation'],
  properties: {
    baseGeneration: generation,
    generation,
    router: { $ref: '#/definitions/router' },
    network: { $ref: '#/definitions/network' },
    firewall: { $ref: '#/definitions/firewall' },
    public: { oneOf: [{ $ref: '#/definitions/public' }, { type: 'null' }] },
    vpc: { oneOf: [{ $ref: '#/definitions/vpc' }, { type: 'null' }] },
    rules: {
      type: 'object',
      additionalProperties: false,
      properties: {
        upsert: { type: 'array', items: { $ref: '#/definitions/rule' } },
        remove: { type: 'array', items: ruleId },
      },
    },
    hosts: {
      type: 'object',
      additionalProperties: false,
      properties: {
        upsert: { type: 'array', items: { $ref: '#/definitions/host' } },
        remove: { type: 'array', items: mac },
      },
    },
    metadata: {
      type: 'object',
      additionalProperties: false,
      properties: { upsert: { $ref: '#/definitions/metadataMap' }, remove: { type: 'array', items: ipv4 } },
    },
    passwords: {
      type: 'object',
      additionalProperties: false,
      properties: { upsert: { $ref: '#/definitions/passwordMap' }, remove: { type: 'array', items: ipv4 } },
    },
  },
  definitions,
} as const;

/** The files docs/desired-state.schema.json and docs/desired-state-delta.schema.json hold these. */
export const schemaFiles = {
  'desired-state.schema.json': desiredStateSchema,
  'desired-state-delta.schema.json': desiredStateDeltaSchema,
} as const;
