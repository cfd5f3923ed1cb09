import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exec } from './exec.js';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('exec settles once its command exits, even when a child it left behind holds the output open', async () => {
  // The shell exits at once; its background sleep keeps stdout and stderr open for a minute.
  const r = await exec(['sh', '-c', 'sleep 60 & echo $!']);
  const pid = Number(r.stdout.trim());
  try {
    assert.equal(r.code, 0);
    assert.equal(r.timedOut, false);
    assert.ok(pid > 0 && alive(pid), 'resolved while the child still held the pipes');
  } finally {
    if (pid > 0) process.kill(pid, 'SIGKILL');
  }
});

test('exec kills a command past its timeout and says so', async () => {
  const r = await exec(['sleep', '60'], { timeoutMs: 200 });
  assert.equal(r.timedOut, true);
  assert.equal(r.code, null);
  assert.equal(r.signal, 'SIGKILL');
});
