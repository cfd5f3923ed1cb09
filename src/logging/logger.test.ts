/** The logger: JSON lines with level names and ISO times, the level setting, the text format, the log hook. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, formatTextLine, logHook, parseLogFormat, parseLogLevel } from './logger.js';

function capture(o: Parameters<typeof createLogger>[0] = {}) {
  const lines: string[] = [];
  const logger = createLogger({ ...o, destination: { write: (l: string) => lines.push(l) } });
  return { logger, lines };
}

test('JSON lines: level name, ISO time, msg, base and event fields; below the level nothing', () => {
  const { logger, lines } = capture({ level: 'info', base: { service: 'stacknet-server' } });
  logger.debug('not shown');
  logger.info({ command: 'listZones', errorcode: 0 }, 'api request');
  logHook(logger)('a module line');
  assert.equal(lines.length, 2);
  const first = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.equal(first.level, 'info');
  assert.match(String(first.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(first.service, 'stacknet-server');
  assert.equal(first.command, 'listZones');
  assert.equal(first.msg, 'api request');
  assert.equal((JSON.parse(lines[1]!) as { msg: string }).msg, 'a module line');
});

test('--log-format text: one readable line per event', () => {
  const { logger, lines } = capture({ format: 'text' });
  logger.warn({ command: 'deployVirtualMachine', errortext: 'no free address', n: 3 }, 'api request');
  assert.equal(lines.length, 1);
  assert.match(
    lines[0]!,
    /^\d{4}-\d\d-\d\dT\S+Z WARN {2}api request command=deployVirtualMachine errortext="no free address" n=3\n$/,
  );
  assert.equal(formatTextLine('not json'), 'not json\n');
});

test('settings: levels and formats by name, anything else refused', () => {
  assert.equal(parseLogLevel(undefined), 'info');
  assert.equal(parseLogLevel('DEBUG'), 'debug');
  assert.throws(() => parseLogLevel('loud'), /unknown log level 'loud'/);
  assert.equal(parseLogFormat(undefined), 'json');
  assert.equal(parseLogFormat('text'), 'text');
  assert.throws(() => parseLogFormat('pretty'), /unknown log format/);
});

test('buffered (the server): every line on stderr, in order, whole, UTF-8, flushed at exit', async () => {
  const { spawn } = await import('node:child_process');
  const script = [
    `const { createLogger } = await import(${JSON.stringify(new URL('./logger.ts', import.meta.url).href)});`,
    "const log = createLogger({ buffered: true, base: { service: 's' } });",
    "for (let i = 0; i < 3000; i++) log.info({ i, text: i % 7 ? 'plain' : 'été → 東京 \"q\"' }, 'line');",
    'await new Promise((r) => setImmediate(r));',
    "for (let i = 3000; i < 3500; i++) log.info({ i, text: 'after a turn' }, 'line');",
    'process.exit(0);',
  ].join('\n');
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const chunks: Buffer[] = [];
  child.stderr.on('data', (c: Buffer) => chunks.push(c));
  const code = await new Promise((r) => child.on('close', r));
  assert.equal(code, 0);
  const lines = Buffer.concat(chunks).toString('utf8').split('\n');
  assert.equal(lines.pop(), '');
  assert.equal(lines.length, 3500);
  lines.forEach((l, i) => {
    const o = JSON.parse(l) as { i: number; text: string; msg: string };
    assert.equal(o.i, i);
    assert.equal(o.text, i >= 3000 ? 'after a turn' : i % 7 ? 'plain' : 'été → 東京 "q"');
  });
});
