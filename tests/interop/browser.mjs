// A minimal browser for the interop tests: `fetch` with a cookie jar
// (RFC 6265 domain-less subset: name, value, Path, expiry), manual redirects
// followed a bounded number of times, and a helper that reads an HTML form.
// Only 127.0.0.1 URLs are ever requested.

const REQUEST_TIMEOUT_MS = 5_000;
const MAX_HOPS = 10;

function defaultPath(pathname) {
  // RFC 6265 §5.1.4: the request path up to, not including, its last '/'.
  const i = pathname.lastIndexOf('/');
  return i <= 0 ? '/' : pathname.slice(0, i);
}

function pathMatches(requestPath, cookiePath) {
  if (requestPath === cookiePath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/';
}

export class Browser {
  /** `name` only labels failures. */
  constructor(name = 'browser') {
    this.name = name;
    /** @type {Map<string, { name: string, value: string, path: string, expires: number }>} */
    this.cookies = new Map();
  }

  /** The cookie names this browser would send to `url`. */
  cookieNamesFor(url) {
    return this.#matching(new URL(url)).map((c) => c.name);
  }

  /** All stored cookies (name and Path only). */
  cookieSummary() {
    return [...this.cookies.values()].map((c) => ({ name: c.name, path: c.path }));
  }

  #matching(url) {
    const now = Date.now();
    const out = [];
    for (const [key, c] of this.cookies) {
      if (c.expires <= now) {
        this.cookies.delete(key);
      } else if (pathMatches(url.pathname, c.path)) {
        out.push(c);
      }
    }
    // RFC 6265 §5.4: longer paths first.
    return out.sort((a, b) => b.path.length - a.path.length);
  }

  #store(url, setCookie) {
    const [pair, ...attrs] = setCookie.split(';');
    const eq = pair.indexOf('=');
    if (eq <= 0) return;
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    let path = defaultPath(url.pathname);
    let expires = Infinity;
    for (const a of attrs) {
      const [k, ...rest] = a.split('=');
      const key = k.trim().toLowerCase();
      const v = rest.join('=').trim();
      if (key === 'path' && v.startsWith('/')) path = v;
      else if (key === 'max-age' && /^-?\d+$/.test(v)) expires = Date.now() + Number(v) * 1000;
      else if (key === 'expires' && expires === Infinity) {
        const t = Date.parse(v);
        if (!Number.isNaN(t)) expires = t;
      }
    }
    const id = `${name}\u0000${path}`;
    if (expires <= Date.now()) this.cookies.delete(id);
    else this.cookies.set(id, { name, value, path, expires });
  }

  /** One request, redirects not followed; stores the response's cookies. */
  async request(url, { method = 'GET', form, headers = {} } = {}) {
    const u = new URL(url);
    if (u.hostname !== '127.0.0.1' && u.hostname !== 'localhost') {
      throw new Error(`${this.name}: refusing to request ${u.origin}`);
    }
    const h = new Headers(headers);
    const cookie = this.#matching(u)
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
    if (cookie) h.set('cookie', cookie);
    let body;
    if (form !== undefined) {
      body = new URLSearchParams(form).toString();
      h.set('content-type', 'application/x-www-form-urlencoded');
    }
    const res = await fetch(u, {
      method,
      headers: h,
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    for (const sc of res.headers.getSetCookie()) this.#store(u, sc);
    const text = await res.text();
    return { url: u.href, status: res.status, headers: res.headers, location: res.headers.get('location'), text };
  }

  /**
   * Requests `url`, then follows redirects (as GET) while they stay under
   * `origin`; a redirect elsewhere (the client's redirect_uri) is returned,
   * not followed. Resolves to `{ last, hops }`, `hops` being every response
   * in order (`last` = the final one).
   */
  async follow(url, { origin, ...init } = {}) {
    const hops = [];
    let res = await this.request(url, init);
    hops.push(res);
    const inOrigin = (r) =>
      r.status >= 300 && r.status < 400 && r.location && new URL(r.location, r.url).origin === origin;
    for (let i = 0; i < MAX_HOPS && inOrigin(res); i++) {
      res = await this.request(new URL(res.location, res.url));
      hops.push(res);
    }
    if (inOrigin(res)) throw new Error(`${this.name}: more than ${MAX_HOPS} redirects from ${new URL(url).pathname}`);
    return { last: res, hops };
  }
}

/**
 * The first `<form>` of `html`: its action (resolved against `base`), its
 * method and its hidden inputs' names and values.
 */
export function parseForm(html, base) {
  const form = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(html);
  if (!form) return undefined;
  const attr = (tag, name) => {
    const m = new RegExp(`\\b${name}="([^"]*)"`, 'i').exec(tag);
    return m ? decodeEntities(m[1]) : undefined;
  };
  const hidden = {};
  const inputs = [];
  for (const m of form[2].matchAll(/<input\b[^>]*>/gi)) {
    const name = attr(m[0], 'name');
    if (!name) continue;
    inputs.push(name);
    if ((attr(m[0], 'type') ?? '').toLowerCase() === 'hidden') hidden[name] = attr(m[0], 'value') ?? '';
  }
  return {
    action: new URL(attr(form[1], 'action') ?? '', base).href,
    method: (attr(form[1], 'method') ?? 'GET').toUpperCase(),
    inputs,
    hidden,
  };
}

function decodeEntities(s) {
  return s
    .replace(/&quot;/g, '"')
    .replace(/&#39;|&#x27;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&#x2F;/gi, '/')
    .replace(/&amp;/g, '&');
}
