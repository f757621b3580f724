// Real-browser tests of the PAR login flow (RFC 9126) through
// examples/legacy_server, a PAR-unaware authorization server wrapped with
// ParLayer and started with its login step (`--login`).
//
// Headless Chromium (Debian's /usr/bin/chromium, or CHROMIUM_PATH) is driven
// by playwright-core. Run with `npm test` in this directory after building
// the example (`cargo build --example legacy_server` in the repository root).
//
// What the browser must never see: the pushed parameters (code_challenge,
// nonce, scope, redirect_uri, ...). Only the compact
// `client_id` + `request_uri` form may travel through the browser, and the
// state only in the final authorization response.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SERVER_BIN = process.env.LEGACY_SERVER_BIN
  ? path.resolve(process.env.LEGACY_SERVER_BIN)
  : path.resolve(HERE, '../../target/debug/examples/legacy_server');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

const CLIENT_ID = 'demo-client';
const CLIENT_SECRET = 'demo-secret';
const REDIRECT_URI = 'http://127.0.0.1:8080/cb';
const SCOPE_VALUES = ['profile', 'email'];
const SCOPE = SCOPE_VALUES.join(' ');

// Bounds: every wait below has one, and the whole file has a watchdog.
const STEP_MS = 10_000; // one navigation / selector / fetch
const STARTUP_MS = 15_000; // server listening, browser launched
const TEST_MS = 30_000; // one scenario
const FILE_MS = 85_000; // everything

let server; // { child, base, output() }
let browser;

// ---------------------------------------------------------------- watchdog

const watchdog = setTimeout(() => {
  console.error(`flow.test.mjs: exceeded ${FILE_MS} ms, giving up`);
  killServer('SIGKILL');
  process.exit(1);
}, FILE_MS);
watchdog.unref();

// Whatever happens, never leave the server running.
process.on('exit', () => killServer('SIGKILL'));

function killServer(signal = 'SIGTERM') {
  const child = server?.child;
  if (child && child.exitCode === null && child.signalCode === null) {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

// ------------------------------------------------------------------ server

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** A timer that does not keep the process alive: for bounding races. */
const bound = (ms) => new Promise((r) => setTimeout(r, ms).unref());

async function startServerOnce() {
  const port = await freePort();
  const env = { ...process.env };
  // Defaults only: plain-http issuer derived from the address (development
  // mode: the flow cookie is not Secure), demo clients, flow-bound
  // redemption.
  for (const k of [
    'ADDR',
    'PAR_ISSUER',
    'PAR_CLIENTS',
    'PAR_REQUIRED',
    'PAR_TTL_SECS',
    'PAR_METADATA',
    'PAR_DEMO_LOGIN',
    'PAR_REDEMPTION',
  ]) {
    delete env[k];
  }
  const child = spawn(SERVER_BIN, ['--login', '--addr', `127.0.0.1:${port}`], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  let spawnError = null;
  child.on('error', (e) => (spawnError = e));
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + STARTUP_MS;
  while (Date.now() < deadline) {
    if (spawnError) throw new Error(`cannot start ${SERVER_BIN}: ${spawnError.message}`);
    if (child.exitCode !== null || child.signalCode !== null) {
      return { child, base, exited: true, output: () => out };
    }
    try {
      const res = await fetch(`${base}/.well-known/oauth-authorization-server`, {
        signal: AbortSignal.timeout(1_000),
      });
      if (res.ok) {
        const meta = await res.json();
        assert.equal(meta.issuer, base, 'issuer must be the plain-http listen address');
        return { child, base, exited: false, output: () => out };
      }
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      // not listening yet
    }
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error(`legacy_server did not answer within ${STARTUP_MS} ms; output:\n${out}`);
}

async function startServer() {
  if (!existsSync(SERVER_BIN)) {
    throw new Error(
      `legacy_server binary not found at ${SERVER_BIN}.\n` +
        'Build it in the repository root with `cargo build --example legacy_server`, ' +
        'or point LEGACY_SERVER_BIN at it.',
    );
  }
  // The free port can be taken between probing and binding: retry then.
  let last = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const s = await startServerOnce();
    if (!s.exited) return s;
    last = s.output();
  }
  throw new Error(`legacy_server exited at startup; output:\n${last}`);
}

async function stopServer() {
  const child = server?.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const done = await Promise.race([exited.then(() => true), bound(3_000).then(() => false)]);
  if (!done) {
    child.kill('SIGKILL');
    await Promise.race([exited, bound(2_000)]);
  }
}

// ------------------------------------------------------------------ client

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const hex = (n) => randomBytes(n).toString('hex');

/** Pushes a fresh authorization request like a confidential client would. */
async function push() {
  const verifier = b64url(randomBytes(32));
  const pushed = {
    state: `st8-${hex(12)}`,
    nonce: `n0nce-${hex(12)}`,
    verifier,
    challenge: b64url(createHash('sha256').update(verifier).digest()),
  };
  const body = new URLSearchParams({
    response_type: 'code',
    redirect_uri: REDIRECT_URI,
    scope: SCOPE,
    state: pushed.state,
    nonce: pushed.nonce,
    code_challenge: pushed.challenge,
    code_challenge_method: 'S256',
  });
  const res = await fetch(`${server.base}/par`, {
    method: 'POST',
    headers: {
      authorization: 'Basic ' + Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64'),
      'content-type': 'application/x-www-form-urlencoded',
    },
    body,
    signal: AbortSignal.timeout(STEP_MS),
  });
  const text = await res.text();
  assert.equal(res.status, 201, `POST /par: ${res.status} ${text}`);
  const json = JSON.parse(text);
  assert.match(json.request_uri, /^urn:ietf:params:oauth:request_uri:/);
  assert.ok(Number.isInteger(json.expires_in) && json.expires_in > 0, `expires_in: ${text}`);
  pushed.requestUri = json.request_uri;
  pushed.authorizeUrl =
    `${server.base}/authorize?` +
    new URLSearchParams({ client_id: CLIENT_ID, request_uri: json.request_uri });
  return pushed;
}

/** Exchanges the code at the legacy token endpoint (PKCE with the verifier). */
async function redeemCode(code, verifier) {
  const res = await fetch(`${server.base}/token`, {
    method: 'POST',
    headers: {
      authorization: 'Basic ' + Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64'),
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT_URI,
      code_verifier: verifier,
    }),
    signal: AbortSignal.timeout(STEP_MS),
  });
  const text = await res.text();
  assert.equal(res.status, 200, `POST /token: ${res.status} ${text}`);
  return JSON.parse(text);
}

// ----------------------------------------------------------------- browser

const CALLBACK_PAGE =
  '<!doctype html><html><head><title>client callback</title></head>' +
  '<body><p id="callback">callback received</p></body></html>';

/** A fresh browser profile (cookies, storage, history of its own). */
async function newContext() {
  const context = await browser.newContext();
  context.setDefaultTimeout(STEP_MS);
  context.setDefaultNavigationTimeout(STEP_MS);
  return context;
}

/**
 * Answers the client's redirect_uri (nothing listens on 127.0.0.1:8080) with
 * a small 200 page, in the browser itself.
 *
 * The callback is only ever reached as the target of a redirect, and
 * Playwright's `page.route` / `context.route` do not see redirect targets
 * (its Chromium network manager continues every redirected request
 * unrouted). So the hop is answered at the level below, with the DevTools
 * protocol's Fetch domain on this page's target, which does pause
 * redirected requests. Playwright's routing is left off on purpose: mixing
 * both interceptors garbles Playwright's request/response events.
 */
async function stubCallback(context, page, served) {
  const cdp = await context.newCDPSession(page);
  cdp.on('Fetch.requestPaused', (event) => {
    const url = event.request.url;
    const isCallback = url === REDIRECT_URI || url.startsWith(`${REDIRECT_URI}?`);
    if (isCallback) served.push(url);
    cdp
      .send('Fetch.fulfillRequest', {
        requestId: event.requestId,
        responseCode: isCallback ? 200 : 404,
        responseHeaders: [
          { name: 'content-type', value: 'text/html; charset=utf-8' },
          { name: 'cache-control', value: 'no-store' },
        ],
        body: Buffer.from(isCallback ? CALLBACK_PAGE : 'not found').toString('base64'),
      })
      .catch(() => {
        // the page or context is already closing
      });
  });
  await cdp.send('Fetch.enable', {
    patterns: [{ urlPattern: 'http://127.0.0.1:8080/*', requestStage: 'Request' }],
  });
}

/**
 * A page that records every URL it requests, is redirected through or
 * shows, with the client callback stubbed.
 */
async function recordedPage(context) {
  const page = await context.newPage();
  const urls = [];
  const bodies = [];
  const log = [];
  const served = [];
  const trail = []; // main-frame document requests, in order
  page.on('request', (req) => {
    urls.push(req.url());
    if (req.isNavigationRequest() && req.frame() === page.mainFrame()) {
      trail.push(`${req.method()} ${req.url()}`);
    }
    log.push(`${req.method()} ${req.url()}`);
    const post = req.postData();
    if (post) bodies.push(post);
    for (let from = req.redirectedFrom(); from; from = from.redirectedFrom()) {
      urls.push(from.url());
    }
  });
  page.on('response', (res) => {
    log.push(`  <- ${res.status()} ${res.url()}`);
    const location = res.headers()['location'];
    if (location) {
      const abs = new URL(location, res.url()).href;
      urls.push(abs);
      log.push(`     Location: ${abs}`);
    }
  });
  page.on('framenavigated', (frame) => {
    urls.push(frame.url());
    log.push(`  navigated: ${frame.url()}`);
  });
  await stubCallback(context, page, served);
  return { page, urls, bodies, log, served, trail };
}

function fullyDecoded(s) {
  let cur = s;
  for (let i = 0; i < 5; i++) {
    let next;
    try {
      next = decodeURIComponent(cur.replace(/\+/g, ' '));
    } catch {
      break;
    }
    if (next === cur) break;
    cur = next;
  }
  return cur;
}

/** Raw, once-decoded and fully-decoded forms of a URL or body. */
function forms(s) {
  let once = s;
  try {
    once = decodeURIComponent(s);
  } catch {
    // keep raw
  }
  return [s, once, fullyDecoded(s)];
}

/** The `needles` that occur in some form of some of `haystack`. */
function leaks(haystack, needles) {
  const found = [];
  for (const item of haystack) {
    for (const form of forms(item)) {
      const lower = form.toLowerCase();
      for (const needle of needles) {
        if (lower.includes(needle.toLowerCase())) found.push({ needle, item });
      }
    }
  }
  return found;
}

/** Asserts that none of `needles` occurs in any form of any of `haystack`. */
function assertAbsent(haystack, needles, what, log) {
  const found = leaks(haystack, needles);
  assert.ok(
    found.length === 0,
    `${what} contains ${JSON.stringify(found[0]?.needle)}: ${found[0]?.item}\n` +
      `browser log:\n${log.join('\n')}`,
  );
}

/** Secrets that no URL (and no body) the browser handles may carry. */
function pushedOnly(pushed) {
  return [
    pushed.challenge,
    pushed.nonce,
    pushed.verifier,
    'code_challenge',
    'nonce',
    'scope',
    ...SCOPE_VALUES,
    'redirect_uri',
    'response_type',
  ];
}

/** Opens the compact authorize URL and checks it lands on the login form. */
async function openToLogin(rec, pushed) {
  const { page } = rec;
  const res = await page.goto(pushed.authorizeUrl, { waitUntil: 'domcontentloaded' });
  assert.ok(res, 'no response for the authorize URL');
  assert.equal(res.status(), 200, `login form status; log:\n${rec.log.join('\n')}`);
  const here = new URL(page.url());
  assert.equal(here.origin, server.base);
  assert.equal(here.pathname, '/login', `expected the login form, at ${page.url()}`);
  const returnTo = here.searchParams.get('return_to');
  assert.ok(returnTo, `login URL without return_to: ${page.url()}`);
  assert.ok(returnTo.includes('request_uri='), `return_to is not compact: ${returnTo}`);
  assert.ok(!returnTo.includes('code_challenge'), `return_to carries the pushed request: ${returnTo}`);
  // A path of this server (the demo's login step takes nothing else).
  assert.ok(returnTo.startsWith('/authorize?'), `return_to is not a local path: ${returnTo}`);
  const back = new URL(returnTo, server.base);
  assert.equal(back.origin + back.pathname, `${server.base}/authorize`);
  assert.equal(back.searchParams.get('client_id'), CLIENT_ID);
  assert.equal(back.searchParams.get('request_uri'), pushed.requestUri);
  assert.deepEqual([...back.searchParams.keys()].sort(), ['client_id', 'request_uri']);
  await page.locator('#username').waitFor({ state: 'visible' });
  await page.locator('#password').waitFor({ state: 'visible' });
  await page.locator('#submit').waitFor({ state: 'visible' });
  // The login page itself (hidden return_to, form action) is compact too.
  const html = await page.content();
  assertAbsent([html], [...pushedOnly(pushed), pushed.state], 'login page HTML', rec.log);
  return res;
}

/** Signs in as demo/demo and waits for the authorization response. */
async function logInAndReachCallback(rec, pushed) {
  const { page } = rec;
  await page.fill('#username', 'demo');
  await page.fill('#password', 'demo');
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(REDIRECT_URI), { timeout: STEP_MS }),
    page.click('#submit'),
  ]);
  await page.locator('#callback').waitFor({ state: 'visible' });
  const finalUrl = page.url();
  assert.ok(finalUrl.startsWith(REDIRECT_URI), `final URL: ${finalUrl}`);
  const q = new URL(finalUrl).searchParams;
  const code = q.get('code');
  assert.ok(code, `no code in ${finalUrl}\nbrowser log:\n${rec.log.join('\n')}`);
  assert.equal(q.get('error'), null, `error in ${finalUrl}`);
  assert.equal(q.get('state'), pushed.state, `state in ${finalUrl}`);
  assert.deepEqual(rec.served, [finalUrl], 'the client callback was hit exactly once');
  return { finalUrl, code };
}

// ------------------------------------------------------------------- hooks

before(async () => {
  server = await startServer();
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM}: install it (Debian: apt-get install -y chromium) ` +
        'or set CHROMIUM_PATH.',
    );
  }
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    timeout: STARTUP_MS,
    args: [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

after(async () => {
  try {
    await Promise.race([browser?.close(), bound(5_000)]);
  } finally {
    await stopServer();
    clearTimeout(watchdog);
  }
});

// --------------------------------------------------------------- scenarios

test('happy path: compact authorize -> login -> callback, pushed values never in the browser', { timeout: TEST_MS }, async (t) => {
  const pushed = await push();
  const context = await newContext();
  try {
    const rec = await recordedPage(context);
    await openToLogin(rec, pushed);

    // The browser-binding cookie: development mode (plain-http issuer).
    const cookies = await context.cookies(`${server.base}/authorize`);
    const isFlow = (c) => c.name.startsWith('par_flow_');
    const flow = cookies.find(isFlow);
    assert.ok(flow, `no par_flow_<tag> cookie for /authorize: ${JSON.stringify(cookies)}`);
    assert.equal(flow.path, '/authorize');
    assert.equal(flow.domain, '127.0.0.1');
    assert.equal(flow.httpOnly, true, 'par_flow must be HttpOnly');
    assert.equal(flow.secure, false, 'par_flow must not be Secure on a plain-http issuer');
    assert.equal(flow.sameSite, 'Lax');
    assert.ok(flow.expires > Date.now() / 1000, 'par_flow must be a persistent, unexpired cookie');
    // Scoped to the authorize path: not sent to /login.
    const loginCookies = await context.cookies(`${server.base}/login`);
    assert.ok(!loginCookies.some(isFlow), 'par_flow visible outside /authorize');

    const { finalUrl, code } = await logInAndReachCallback(rec, pushed);
    rec.urls.push(rec.page.url());
    const historyLength = await rec.page.evaluate(() => history.length);
    t.diagnostic(`history.length=${historyLength}, ${new Set(rec.urls).size} distinct URLs recorded`);
    // Redirect hops do not make history entries: the login form and the
    // callback (plus possibly the initial blank page).
    assert.ok(historyLength >= 2 && historyLength <= 3, `history.length=${historyLength}`);

    // The whole trip, in order, as the browser saw it: every hop through
    // /authorize carries only the compact form.
    const loginUrl = rec.urls.find((u) => u.startsWith(`${server.base}/login?`));
    assert.deepEqual(
      rec.trail,
      [
        `GET ${pushed.authorizeUrl}`,
        `GET ${loginUrl}`,
        `POST ${loginUrl}`,
        `GET ${pushed.authorizeUrl}`,
        `GET ${finalUrl}`,
      ],
      `browser log:\n${rec.log.join('\n')}`,
    );
    const visited = rec.urls.map((u) => new URL(u));
    assert.ok(visited.some((u) => u.pathname === '/authorize' && u.origin === server.base));
    assert.ok(visited.some((u) => u.pathname === '/login' && u.origin === server.base));
    for (const u of visited) {
      if (u.origin === server.base && u.pathname === '/authorize') {
        assert.deepEqual([...u.searchParams.keys()].sort(), ['client_id', 'request_uri'], u.href);
      }
    }

    // The state only in the authorization response itself.
    const others = rec.urls.filter((u) => u !== finalUrl);
    assertAbsent(others, [pushed.state], 'a URL before the callback', rec.log);
    // The pushed request nowhere: not in any URL, not in any body sent.
    assertAbsent(rec.urls, pushedOnly(pushed), 'a URL', rec.log);
    assertAbsent(rec.bodies, [...pushedOnly(pushed), pushed.state], 'a request body', rec.log);

    // The pushed values did reach the legacy server: PKCE with the pushed
    // challenge and the pushed scope come back at the token endpoint.
    const token = await redeemCode(code, pushed.verifier);
    assert.equal(token.token_type, 'Bearer');
    assert.equal(token.scope, SCOPE);
  } finally {
    await context.close();
  }
});

test('reloading the login page twice does not break the flow', { timeout: TEST_MS }, async () => {
  const pushed = await push();
  const context = await newContext();
  try {
    const rec = await recordedPage(context);
    await openToLogin(rec, pushed);
    const loginUrl = rec.page.url();
    for (let i = 0; i < 2; i++) {
      const res = await rec.page.reload({ waitUntil: 'domcontentloaded' });
      assert.equal(res?.status(), 200, `reload ${i + 1}`);
      assert.equal(rec.page.url(), loginUrl, `reload ${i + 1} left the login form`);
      await rec.page.locator('#username').waitFor({ state: 'visible' });
    }
    const { finalUrl, code } = await logInAndReachCallback(rec, pushed);
    assertAbsent(rec.urls.filter((u) => u !== finalUrl), [pushed.state], 'a URL before the callback', rec.log);
    assertAbsent(rec.urls, pushedOnly(pushed), 'a URL', rec.log);
    await redeemCode(code, pushed.verifier);
  } finally {
    await context.close();
  }
});

test('the request_uri cannot be used again after the flow completed', { timeout: TEST_MS }, async () => {
  const pushed = await push();
  const context = await newContext();
  try {
    const rec = await recordedPage(context);
    await openToLogin(rec, pushed);
    await logInAndReachCallback(rec, pushed);

    // Same browser, still holding par_flow and the login session.
    const res = await rec.page.goto(pushed.authorizeUrl, { waitUntil: 'domcontentloaded' });
    assert.ok(res, 'no response on re-use');
    assert.equal(res.status(), 400, `re-use after completion; log:\n${rec.log.join('\n')}`);
    assert.ok(rec.page.url().startsWith(`${server.base}/authorize?`), `re-use moved to ${rec.page.url()}`);
    const text = await rec.page.locator('body').innerText();
    assert.ok(text.includes('invalid_request_uri'), `error page: ${text}`);
  } finally {
    await context.close();
  }
});

test('another browser cannot take over a flow in progress; the first one finishes', { timeout: TEST_MS }, async () => {
  const pushed = await push();
  const contextA = await newContext();
  const contextB = await newContext();
  try {
    const a = await recordedPage(contextA);
    await openToLogin(a, pushed);

    const b = await recordedPage(contextB);
    const res = await b.page.goto(pushed.authorizeUrl, { waitUntil: 'domcontentloaded' });
    assert.ok(res, 'no response for browser B');
    assert.equal(res.status(), 400, `browser B; log:\n${b.log.join('\n')}`);
    assert.ok(b.page.url().startsWith(`${server.base}/authorize?`), `browser B moved to ${b.page.url()}`);
    const text = await b.page.locator('body').innerText();
    assert.ok(text.includes('invalid_request_uri'), `browser B error page: ${text}`);
    const bCookies = await contextB.cookies(server.base + '/authorize');
    assert.ok(!bCookies.some((c) => c.name.startsWith('par_flow_')), 'browser B was given a flow cookie');

    const { code } = await logInAndReachCallback(a, pushed);
    await redeemCode(code, pushed.verifier);
  } finally {
    await contextA.close();
    await contextB.close();
  }
});

test('control: the recorder does see a classic (unpushed) request leak through the login bounce', { timeout: TEST_MS }, async () => {
  // Without PAR the legacy server puts the whole request into return_to:
  // the same checks must flag it, or the assertions above prove nothing.
  const verifier = b64url(randomBytes(32));
  const classic = {
    state: `st8-${hex(12)}`,
    nonce: `n0nce-${hex(12)}`,
    verifier,
    challenge: b64url(createHash('sha256').update(verifier).digest()),
  };
  const url =
    `${server.base}/authorize?` +
    new URLSearchParams({
      response_type: 'code',
      client_id: CLIENT_ID,
      redirect_uri: REDIRECT_URI,
      scope: SCOPE,
      state: classic.state,
      nonce: classic.nonce,
      code_challenge: classic.challenge,
      code_challenge_method: 'S256',
    });
  const context = await newContext();
  try {
    const rec = await recordedPage(context);
    const res = await rec.page.goto(url, { waitUntil: 'domcontentloaded' });
    assert.equal(res?.status(), 200);
    assert.equal(new URL(rec.page.url()).pathname, '/login');
    const bounced = rec.urls.filter((u) => u.startsWith(`${server.base}/login?`));
    assert.ok(bounced.length > 0, 'the login bounce was not recorded');
    for (const needle of [classic.challenge, classic.nonce, classic.state, 'scope', ...SCOPE_VALUES]) {
      assert.ok(
        leaks(bounced, [needle]).length > 0,
        `the recorder missed ${needle} in ${bounced[0]}`,
      );
    }
    const cookies = await context.cookies(`${server.base}/authorize`);
    assert.ok(!cookies.some((c) => c.name.startsWith('par_flow_')), 'no flow cookie without a request_uri');
  } finally {
    await context.close();
  }
});
