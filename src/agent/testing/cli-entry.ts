// Runs the CLI from source (node --import tsx src/agent/testing/cli-entry.ts router-agent ...), so the agent's own
// process tests do not depend on a fresh dist/ build.
import { main } from '../../cli/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  },
);
