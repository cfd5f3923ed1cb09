/* global document, location */
// The CloudStack UI's login flow, same-origin: POST login as a form, keep the sessionkey cookie the answer sets,
// then call the API with the session key as a parameter (the cookie goes along by itself), then log out.
// The page's query string carries the credentials: ?username=...&password=...
const out = document.getElementById('out');
const q = new URLSearchParams(location.search);

async function call(params, method = 'GET') {
  const body = new URLSearchParams({ ...params, response: 'json' });
  const r =
    method === 'POST'
      ? await fetch('/client/api', { method, body, credentials: 'same-origin' })
      : await fetch(`/client/api?${body}`, { credentials: 'same-origin' });
  return { status: r.status, json: await r.json() };
}

async function main() {
  const steps = [];
  const login = await call(
    { command: 'login', username: q.get('username'), password: q.get('password'), domain: '/' },
    'POST',
  );
  const sessionkey = login.json.loginresponse && login.json.loginresponse.sessionkey;
  steps.push(`login ${login.status} timezoneoffset=${login.json.loginresponse.timezoneoffset}`);
  steps.push(`cookie-readable ${document.cookie.includes('sessionkey')}`);
  for (const command of ['listCapabilities', 'listLdapConfigurations', 'listZones']) {
    const r = await call({ command, sessionkey });
    steps.push(`${command} ${r.status} ${JSON.stringify(r.json)}`);
  }
  const noKey = await call({ command: 'listZones' });
  steps.push(`without-sessionkey ${noKey.status}`);
  const logout = await call({ command: 'logout', sessionkey });
  steps.push(`logout ${logout.status}`);
  const after = await call({ command: 'listZones', sessionkey });
  steps.push(`after-logout ${after.status}`);
  out.textContent = `${steps.join('\n')}\nDONE`;
}

main().catch((e) => {
  out.textContent = `FAILED ${e && e.stack ? e.stack : e}`;
});
