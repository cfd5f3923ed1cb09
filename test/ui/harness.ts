/** The UI tests' shared parts: the project's own console page and a browser-like HTTP session. */
import { join } from 'node:path';

/** test/ui/console: a small page that logs in the way CloudStack's UI does (served with --ui-dir). */
export const consoleDir = join(new URL('.', import.meta.url).pathname, 'console');

/** A browser's session: the cookies the server set, sent back on every request of the same origin. */
export class BrowserSession {
  private readonly cookies = new Map<string, string>();
  constructor(private readonly origin: string) {}

  async request(path: string, init: { method?: string; form?: Record<string, string> } = {}) {
    const headers: Record<string, string> = {};
    if (this.cookies.size > 0) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    let body: string | undefined;
    if (init.form) {
      body = new URLSearchParams(init.form).toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    }
    const r = await fetch(`${this.origin}${path}`, {
      method: init.method ?? (body ? 'POST' : 'GET'),
      headers,
      body,
      redirect: 'manual',
    });
    for (const c of r.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair!.indexOf('=');
      const [k, v] = [pair!.slice(0, i), pair!.slice(i + 1)];
      if (v === '' || /Max-Age=0/i.test(c)) this.cookies.delete(k);
      else this.cookies.set(k, v);
    }
    return r;
  }

  async api(params: Record<string, string>, method: 'GET' | 'POST' = 'GET') {
    const q = new URLSearchParams({ ...params, response: 'json' }).toString();
    const r =
      method === 'POST'
        ? await this.request('/client/api', { form: { ...params, response: 'json' } })
        : await this.request(`/client/api?${q}`);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    return { status: r.status, json: (await r.json()) as any };
  }
}
