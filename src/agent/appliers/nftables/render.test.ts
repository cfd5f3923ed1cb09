import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { golden, goldenCases, goldenCtx } from '../../testing/golden.js';
import { nftablesRenderer } from './render.js';

const testdata = join(dirname(fileURLToPath(import.meta.url)), 'testdata');

describe('nftables render: golden files', () => {
  for (const [name, make] of Object.entries(goldenCases))
    it(name, () => golden(testdata, `${name}.nft`, nftablesRenderer.render(make(), goldenCtx)));
});
