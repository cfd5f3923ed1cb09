import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_HEAP_GROWING_PERCENT, processSettingsOf } from './process-settings.js';

test('the heap growing percent: default, STACKNET_HEAP_GROWING_PERCENT, 0 for V8 own, node flags win', () => {
  assert.deepEqual(processSettingsOf({}, []), {
    heapGrowingPercent: DEFAULT_HEAP_GROWING_PERCENT,
    source: 'default',
  });
  assert.deepEqual(processSettingsOf({ STACKNET_HEAP_GROWING_PERCENT: '50' }, []), {
    heapGrowingPercent: 50,
    source: 'env',
  });
  assert.deepEqual(processSettingsOf({ STACKNET_HEAP_GROWING_PERCENT: '0' }, []), {
    heapGrowingPercent: undefined,
    source: 'env',
  });
  for (const [env, argv] of [
    [{ NODE_OPTIONS: '--require x --heap-growing-percent=80', STACKNET_HEAP_GROWING_PERCENT: '10' }, []],
    [{}, ['--heap_growing_percent=80']],
  ] as const)
    assert.deepEqual(processSettingsOf(env, argv), { heapGrowingPercent: undefined, source: 'node flags' });
  // A heap-size flag is the operator's and leaves the growing factor to this setting.
  assert.equal(
    processSettingsOf({ NODE_OPTIONS: '--max-old-space-size=384' }, []).heapGrowingPercent,
    DEFAULT_HEAP_GROWING_PERCENT,
  );
  for (const bad of ['-1', '1.5', 'lots', '1001'])
    assert.throws(() => processSettingsOf({ STACKNET_HEAP_GROWING_PERCENT: bad }, []), /0 to 1000/);
});
