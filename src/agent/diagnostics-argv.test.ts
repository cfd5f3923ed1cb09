/** The pure half of runDiagnostics: which requests pass, and the argv they become (never a shell line). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { capOutput, checkRunRequest, diagnosticsArgv, paramsProblem } from './diagnostics-argv.js';

test('params: CloudStack characters only (letters, digits, _, -, ., spaces)', () => {
  for (const ok of [undefined, '', '-c 2', '-c 2 -i 0.2 -W 1', '-I eth0', '-s 1400 -M do'])
    assert.equal(paramsProblem(ok), undefined, String(ok));
  for (const bad of [
    ';',
    '-c 1;id',
    '$(id)',
    '`id`',
    'a|b',
    'a&b',
    '>x',
    '-f /etc/passwd',
    '-p=ff',
    "'x'",
    '"x"',
    '\\',
  ])
    assert.match(paramsProblem(bad) ?? '', /unwanted characters/, bad);
  assert.match(paramsProblem('-c '.repeat(100)) ?? '', /longer than 255/);
});

test('the request: type, address family, params, timeout ceiling', () => {
  assert.equal(checkRunRequest({ type: 'nslookup', ipaddress: '10.0.0.1' }).ok, false);
  assert.equal(checkRunRequest({ type: 'ping', ipaddress: 'example.com' }).ok, false);
  assert.equal(checkRunRequest({ type: 'ping', ipaddress: '10.0.0.1 -f' }).ok, false);
  const v6arp = checkRunRequest({ type: 'arping', ipaddress: 'fd00::1' });
  assert.ok(!v6arp.ok && v6arp.field === 'ipaddress' && /IPv4 only/.test(v6arp.message));
  const r = checkRunRequest({ type: 'ping', ipaddress: 'fd00::1', timeoutSeconds: 3600 });
  assert.ok(r.ok);
  assert.equal(r.value.timeoutSeconds, 60, "never longer than CloudStack's 60 s");
});

test('argv: bounded defaults, then the caller options, the address last', () => {
  assert.deepEqual(diagnosticsArgv({ type: 'ping', ipaddress: '10.1.1.5', params: ' -c 2  -i 0.2 ' }), [
    'ping',
    '-c',
    '4',
    '-W',
    '2',
    '-c',
    '2',
    '-i',
    '0.2',
    '10.1.1.5',
  ]);
  assert.deepEqual(diagnosticsArgv({ type: 'ping', ipaddress: 'fd00::5' }).slice(0, 2), ['ping', '-6']);
  assert.equal(diagnosticsArgv({ type: 'traceroute', ipaddress: '10.1.1.5' })[0], 'traceroute');
  assert.deepEqual(diagnosticsArgv({ type: 'arping', ipaddress: '10.1.1.5' }), [
    'arping',
    '-c',
    '4',
    '-w',
    '5',
    '10.1.1.5',
  ]);
});

test('output over the cap is cut, saying how long it was', () => {
  assert.equal(capOutput('abc', 10), 'abc');
  assert.match(capOutput('x'.repeat(20), 10), /^x{10}\n\[stacknet: output cut at 10 characters of 20\]\n$/);
});
