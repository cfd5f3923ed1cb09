// A CPU profile of a whole server process, written when it exits, for `npm run bench:api` (`--cpu-prof` is not
// allowed in NODE_OPTIONS):
//   BENCH_SERVER_NODE_OPTIONS="--import $PWD/bench/server-cpu-profile.mjs" PROFILE_DIR=/tmp/p npm run bench:api -- ...
// then `node --import tsx bench/profile-areas.ts /tmp/p/server-*.cpuprofile` (or bench/zone-profile.ts).
// The in-thread inspector session answers synchronously, so the profile can be taken in the 'exit' handler.
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';

const dir = process.env.PROFILE_DIR ?? '/tmp';
const session = new Session();
session.connect();
session.post('Profiler.enable');
session.post('Profiler.setSamplingInterval', { interval: Number(process.env.PROFILE_INTERVAL_US ?? 200) });
session.post('Profiler.start');
let written = false;
process.on('exit', () => {
  if (written) return;
  written = true;
  session.post('Profiler.stop', (err, r) => {
    if (!err) writeFileSync(`${dir}/server-${process.pid}.cpuprofile`, JSON.stringify(r.profile));
  });
});
