/**
 * What guests reach on the router: the metadata service (port 80, CloudStack's `latest/` layout, reference §4.6)
 * and the password server (port 8080, `DomU_Request`, reference §4.7). The request's source address selects the
 * VM, exactly as CloudStack's `.htaccess` rules use REMOTE_ADDR: a VM can only ever read its own data.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { RouterAgent } from './agent.js';
import { legacyMetadataKeys } from './desired-state.js';

function plain(res: ServerResponse, code: number, body: string | Buffer): void {
  res.writeHead(code, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function addr(a: string | undefined): string {
  return (a ?? '').replace(/^::ffff:/, '');
}

const legacy = new Set<string>(legacyMetadataKeys);

export function decodeUserData(b64: string): Buffer {
  // CloudStack pads to a multiple of 4 before decoding; accept URL-safe input too.
  const t = b64.replace(/\s/g, '').replace(/-/g, '+').replace(/_/g, '/');
  return Buffer.from(t + '='.repeat((4 - (t.length % 4)) % 4), 'base64');
}

export function handleMetadata(agent: RouterAgent, req: IncomingMessage, res: ServerResponse): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') return plain(res, 405, 'method not allowed\n');
  // Only on the router's own guest addresses (and only while this router is the primary of a pair).
  if (!agent.servesGuests || !agent.isRouterAddress(addr(req.socket.localAddress)))
    return plain(res, 404, 'not found\n');
  const vm = agent.metadataFor(addr(req.socket.remoteAddress));
  if (!vm) return plain(res, 404, 'not found\n');
  const path = new URL(req.url ?? '/', 'http://x').pathname.replace(/\/+$/, '');
  if (path === '/latest') return plain(res, 200, 'meta-data\nuser-data');
  if (path === '/latest/user-data') {
    if (!vm.userData) return plain(res, 404, 'not found\n');
    return plain(res, 200, decodeUserData(vm.userData));
  }
  if (path === '/latest/meta-data') {
    const keys = Object.keys(vm.metaData).filter((k) => vm.metaData[k] !== '');
    return plain(res, 200, keys.join('\n'));
  }
  let key: string | undefined;
  if (path.startsWith('/latest/meta-data/')) key = path.slice('/latest/meta-data/'.length);
  else if (path.startsWith('/latest/') && legacy.has(path.slice('/latest/'.length)))
    key = path.slice('/latest/'.length);
  // An empty value means "deleted" in CloudStack's vm_metadata payloads.
  if (key !== undefined && Object.prototype.hasOwnProperty.call(vm.metaData, key) && vm.metaData[key] !== '')
    return plain(res, 200, vm.metaData[key]!);
  return plain(res, 404, 'not found\n');
}

export function handlePassword(agent: RouterAgent, req: IncomingMessage, res: ServerResponse): void {
  if (!agent.servesGuests || !agent.isRouterAddress(addr(req.socket.localAddress)))
    return plain(res, 404, 'not found\n');
  const ip = addr(req.socket.remoteAddress);
  const op = req.headers['domu_request'];
  if (req.method === 'GET' && op === 'send_my_password') {
    const pw = agent.passwordFor(ip);
    return plain(res, 200, pw ?? 'saved_password');
  }
  if (req.method === 'GET' && op === 'saved_password') {
    agent.ackPassword(ip);
    return plain(res, 200, 'saved_password');
  }
  return plain(res, 400, 'bad_request');
}

export function createMetadataServer(agent: RouterAgent): Server {
  return createServer((req, res) => handleMetadata(agent, req, res));
}

export function createPasswordServer(agent: RouterAgent): Server {
  return createServer((req, res) => handlePassword(agent, req, res));
}
