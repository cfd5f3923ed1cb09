// Builds (or finds in its cache) the project's test template for the libvirt backend and prints it as JSON:
// { dir, url, format, checksum, packages }. See src/hostagent/libvirt/test-template.ts.
//   node --import tsx scripts/build-test-template.ts [--cache-dir DIR]
import { buildTestTemplate } from '../src/hostagent/libvirt/test-template.js';

const i = process.argv.indexOf('--cache-dir');
const cacheDir = i > 0 ? process.argv[i + 1] : undefined;
const t = await buildTestTemplate({ cacheDir, log: (m) => console.error(m) });
console.log(JSON.stringify(t));
