// Interop test: par-proxy in front of an authorization server nobody here
// wrote. oidc-provider (npm, v9, pinned; its own PAR feature OFF, its
// development login and consent pages ON) is the upstream, par-proxy runs in
// front of it with the same client, and openid-client 6 drives the Pushed
// Authorization Request flow (RFC 9126) through the proxy:
//
//   discovery (augmented by the proxy) -> POST /par (at the proxy)
//   -> GET /auth?client_id&request_uri (rewritten by the proxy into a plain
//      authorization request) -> oidc-provider's login page
//   -> login + consent (oidc-provider's /interaction/<uid>)
//   -> /auth/<uid> resume -> 303 to redirect_uri with code
//   -> POST /token (through the proxy)
//
// and checks that a reused or tampered request_uri is refused AT THE PROXY
// (oidc-provider never sees it), that the flow completes on the
// authorization response oidc-provider sends from its resume path, so the
// same browser cannot re-enter for a second code, and that a 40 KB
// authorization_details reaches oidc-provider whole, as a form POST, since
// the rebuilt GET would exceed Node's 16 KB header limit.
//
// Run: cargo build -p par-proxy && npm ci && npm test
// Override the proxy binary with PAR_PROXY_BIN=/path/to/par-proxy.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as client from 'openid-client';
import { Browser, parseForm } from './browser.mjs';
import { freePort, parProxyBin, startProcess } from './server.mjs';
import { RAR_TYPE, startUpstream } from './upstream.mjs';

const REDIRECT_URI = 'http://127.0.0.1:8080/cb';
const CLIENT_ID = 'interop-client';
const CLIENT_SECRET = 'interop-secret-not-for-production';
// The one client, registered alike at the proxy (clients file, RFC 7591
// names) and at oidc-provider.
const CLIENT = {
  client_id: CLIENT_ID,
  client_secret: CLIENT_SECRET,
  token_endpoint_auth_method: 'client_secret_basic',
  redirect_uris: [REDIRECT_URI],
};
const LIFETIME_SECS = 60;
const REQUEST_TIMEOUT_S = 5;
const WHOLE_RUN_LIMIT_MS = 55_000;
const REQUEST_URI_PREFIX = 'urn:ietf:params:oauth:request_uri:';
// Node's default --max-http-header-size: what a GET to oidc-provider may carry.
const NODE_HEADER_LIMIT = 16 * 1024;

let stack; // { issuer, upstream, proxy, dir }
// Every value pushed or issued, none of which may appear in the proxy's log.
const secretsAndValues = [CLIENT_SECRET];

setTimeout(() => {
  console.error(`proxy interop: gave up after ${WHOLE_RUN_LIMIT_MS} ms\n--- par-proxy output ---\n${stack?.proxy?.log() ?? ''}`);
  stack?.proxy?.kill();
  process.exit(1);
}, WHOLE_RUN_LIMIT_MS).unref();

/**
 * Starts oidc-provider and par-proxy in front of it. The proxy's port is
 * picked first because oidc-provider's issuer names it; if the proxy cannot
 * bind it (another process took it), both are started again.
 */
async function startStack() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'par-proxy-interop-'));
  const clientsFile = path.join(dir, 'clients.json');
  writeFileSync(
    clientsFile,
    JSON.stringify({
      clients: [CLIENT],
    }),
  );
  let lastError;
  for (let attempt = 1; attempt <= 3; attempt++) {
    const proxyPort = await freePort();
    const issuer = `http://127.0.0.1:${proxyPort}`;
    const upstream = await startUpstream({
      issuer,
      clients: [CLIENT],
    });
    const configFile = path.join(dir, 'par-proxy.toml');
    writeFileSync(
      configFile,
      [
        `listen = "127.0.0.1:${proxyPort}"`,
        `upstream = "${upstream.url}"`,
        `public_url = "${issuer}"`,
        'upstream_timeout_secs = 10',
        '',
        '[par]',
        'path = "/par"',
        // oidc-provider's authorization endpoint.
        'authorize_path = "/auth"',
        `lifetime_secs = ${LIFETIME_SECS}`,
        '',
        '[clients]',
        `file = ${JSON.stringify(clientsFile)}`,
        '',
      ].join('\n'),
    );
    try {
      const proxy = await startProcess({
        bin: parProxyBin,
        name: 'par-proxy',
        // The port is in the configuration file: always the one picked above.
        args: () => ['--config', configFile],
        scrub: ['PAR_PROXY_*', 'RUST_LOG'],
        hint: 'Build it first: cargo build -p par-proxy (from the workspace root), or set PAR_PROXY_BIN to its path.',
        port: proxyPort,
      });
      return { issuer, upstream, proxy, dir };
    } catch (e) {
      lastError = e;
      await upstream.close();
      // Only an early exit (the port taken meanwhile) is worth a retry.
      if (!/exited early/.test(e.message)) break;
    }
  }
  rmSync(dir, { recursive: true, force: true });
  throw lastError;
}

function timeout() {
  return AbortSignal.timeout(REQUEST_TIMEOUT_S * 1000);
}

async function discover() {
  const config = await client.discovery(
    new URL(stack.issuer),
    CLIENT_ID,
    undefined,
    client.ClientSecretBasic(CLIENT_SECRET),
    { timeout: REQUEST_TIMEOUT_S, execute: [client.allowInsecureRequests] },
  );
  config.timeout = REQUEST_TIMEOUT_S;
  return config;
}

/**
 * Pushes an authorization request with openid-client; returns the /auth URL
 * it built, the PAR response (status and JSON body, seen through
 * openid-client's customFetch) and the values the client keeps.
 */
async function push(config, extra = {}) {
  const pkceCodeVerifier = client.randomPKCECodeVerifier();
  const code_challenge = await client.calculatePKCECodeChallenge(pkceCodeVerifier);
  const state = client.randomState();
  const nonce = client.randomNonce();
  let parResponse;
  config[client.customFetch] = async (url, options) => {
    const res = await fetch(url, options);
    if (new URL(url).pathname === '/par') {
      parResponse = { status: res.status, headers: res.headers, body: await res.clone().json().catch(() => undefined) };
    }
    return res;
  };
  try {
    const url = await client.buildAuthorizationUrlWithPAR(config, {
      redirect_uri: REDIRECT_URI,
      scope: 'openid',
      code_challenge,
      code_challenge_method: 'S256',
      state,
      nonce,
      ...extra,
    });
    secretsAndValues.push(state, nonce, code_challenge, pkceCodeVerifier);
    if (parResponse?.body?.request_uri) secretsAndValues.push(parResponse.body.request_uri);
    return { url, parResponse, pkceCodeVerifier, state, nonce, code_challenge };
  } finally {
    delete config[client.customFetch];
  }
}

/** What the proxy answers when it refuses a request itself. */
function assertRefusedByProxy(res, what) {
  assert.equal(res.status, 400, `${what}: expected 400 from the proxy, got ${res.status}: ${res.text.slice(0, 300)}`);
  assert.equal(res.location, null, `${what}: the refusal must not redirect`);
  assert.match(res.headers.get('cache-control') ?? '', /no-store/, `${what}: Cache-Control`);
  // tower-par's error, as JSON or as its HTML page.
  assert.match(res.text, /invalid_request_uri|invalid_request/, `${what}: not an OAuth error body: ${res.text.slice(0, 300)}`);
}

/** Requests to oidc-provider's authorization endpoint made after `mark`. */
function upstreamAuthSince(mark) {
  return stack.upstream.seen.slice(mark);
}

before(async () => {
  stack = await startStack();
});

after(async () => {
  stack?.proxy?.kill();
  await stack?.upstream?.close();
  if (stack?.dir) rmSync(stack.dir, { recursive: true, force: true });
});

describe('discovery through par-proxy', () => {
  test('the proxy adds its /par to oidc-provider\'s discovery document, which has none of its own (PAR-33)', async () => {
    const direct = await fetch(`${stack.upstream.url}/.well-known/openid-configuration`, { signal: timeout() });
    assert.equal(direct.status, 200);
    const own = await direct.json();
    assert.equal(own.pushed_authorization_request_endpoint, undefined, 'oidc-provider\'s own PAR must be off');

    const res = await fetch(`${stack.issuer}/.well-known/openid-configuration`, { signal: timeout() });
    assert.equal(res.status, 200);
    const doc = await res.json();
    assert.equal(doc.issuer, stack.issuer);
    assert.equal(doc.pushed_authorization_request_endpoint, `${stack.issuer}/par`);
    // oidc-provider built its own endpoints for the proxy's host.
    assert.equal(doc.authorization_endpoint, `${stack.issuer}/auth`);
    assert.equal(doc.token_endpoint, `${stack.issuer}/token`);
  });

  test('openid-client discovers the PAR endpoint through the proxy (PAR-35)', async () => {
    const config = await discover();
    const md = config.serverMetadata();
    assert.equal(md.issuer, stack.issuer);
    assert.equal(md.pushed_authorization_request_endpoint, `${stack.issuer}/par`);
  });
});

describe('the PAR flow through par-proxy to oidc-provider', () => {
  let config;
  let pushed; // push()'s result
  const browser = new Browser('first browser');
  let loginPage; // the response carrying oidc-provider's login form

  before(async () => {
    config = await discover();
  });

  test('the push succeeds at the proxy: 201 with request_uri and expires_in (PAR-13)', async () => {
    pushed = await push(config);
    const { url, parResponse } = pushed;
    assert.ok(parResponse, 'openid-client did not call the proxy\'s /par');
    assert.equal(parResponse.status, 201);
    assert.match(parResponse.headers.get('cache-control') ?? '', /no-store/);
    assert.equal(typeof parResponse.body.request_uri, 'string');
    assert.ok(parResponse.body.request_uri.startsWith(REQUEST_URI_PREFIX), 'request_uri is not a PAR URN');
    assert.equal(parResponse.body.expires_in, LIFETIME_SECS);
    // The front-channel URL carries only the client_id and the reference.
    assert.equal(url.origin + url.pathname, `${stack.issuer}/auth`);
    assert.deepEqual([...url.searchParams.keys()].sort(), ['client_id', 'request_uri']);
    assert.equal(url.searchParams.get('request_uri'), parResponse.body.request_uri);
  });

  test('GET /auth?client_id&request_uri reaches oidc-provider as a plain request; its login page comes back (M-2, PAR-32)', async () => {
    assert.ok(pushed, 'no pushed request');
    const mark = stack.upstream.seen.length;
    const { last, hops } = await browser.follow(pushed.url, { origin: stack.issuer });
    // oidc-provider starts an interaction: 303 to /interaction/<uid>.
    assert.equal(hops[0].status, 303, `first answer ${hops[0].status}: ${hops[0].text.slice(0, 300)}`);
    assert.match(new URL(hops[0].location, stack.issuer).pathname, /^\/interaction\/[\w-]+$/);
    assert.equal(last.status, 200, `login page: ${last.status}: ${last.text.slice(0, 300)}`);
    const form = parseForm(last.text, last.url);
    assert.ok(form, 'no form on the interaction page');
    assert.equal(form.method, 'POST');
    assert.equal(form.hidden.prompt, 'login');
    assert.ok(form.inputs.includes('login') && form.inputs.includes('password'), `inputs: ${form.inputs}`);
    assert.equal(new URL(form.action).origin, stack.issuer, 'the login form posts through the proxy');
    loginPage = last;

    // What oidc-provider received: one plain GET /auth with the pushed
    // parameters and no request_uri, for the proxy's host.
    const auth = upstreamAuthSince(mark);
    assert.equal(auth.length, 1, `requests to oidc-provider's /auth: ${JSON.stringify(auth)}`);
    assert.equal(auth[0].method, 'GET');
    assert.equal(auth[0].path, '/auth');
    assert.equal(auth[0].host, new URL(stack.issuer).host);
    assert.ok(!auth[0].queryNames.includes('request_uri'), `request_uri reached oidc-provider: ${auth[0].queryNames}`);
    for (const name of ['client_id', 'code_challenge', 'code_challenge_method', 'nonce', 'redirect_uri', 'response_type', 'scope', 'state']) {
      assert.ok(auth[0].queryNames.includes(name), `${name} missing from what oidc-provider got: ${auth[0].queryNames}`);
    }
  });

  test('the same browser may come back before the code (a reload); another browser (no cookies) is refused at the proxy (PAR-28, PAR-40)', async () => {
    assert.ok(loginPage, 'the first browser has not redeemed the request');
    // Flow-bound redemption: the browser holding the flow gets the same
    // request again, and oidc-provider starts a new interaction for it.
    let mark = stack.upstream.seen.length;
    const reload = await browser.follow(pushed.url, { origin: stack.issuer });
    assert.equal(reload.hops[0].status, 303, `reload: ${reload.hops[0].status}: ${reload.hops[0].text.slice(0, 300)}`);
    assert.equal(parseForm(reload.last.text, reload.last.url)?.hidden.prompt, 'login', 'no login page on reload');
    assert.deepEqual(upstreamAuthSince(mark).map((e) => [e.method, e.path]), [['GET', '/auth']]);
    loginPage = reload.last;

    mark = stack.upstream.seen.length;
    const other = new Browser('second browser');
    const res = await other.request(pushed.url);
    assertRefusedByProxy(res, 'reused request_uri');
    assert.deepEqual(upstreamAuthSince(mark), [], 'oidc-provider saw the reused request_uri');
  });

  test('a tampered request_uri is refused at the proxy, even from the browser holding the flow (M-2)', async () => {
    const mark = stack.upstream.seen.length;
    const original = pushed.url.searchParams.get('request_uri');
    const last = original.at(-1);
    const tampered = new URL(pushed.url);
    tampered.searchParams.set('request_uri', original.slice(0, -1) + (last === 'A' ? 'B' : 'A'));
    for (const b of [browser, new Browser('third browser')]) {
      const res = await b.request(tampered);
      assertRefusedByProxy(res, `tampered request_uri (${b.name})`);
    }
    const unknown = new URL(pushed.url);
    unknown.searchParams.set('request_uri', `${REQUEST_URI_PREFIX}not-pushed-here`);
    assertRefusedByProxy(await browser.request(unknown), 'unknown request_uri');
    assert.deepEqual(upstreamAuthSince(mark), [], 'oidc-provider saw a tampered request_uri');
  });

  let callback; // the redirect to redirect_uri with the code

  test('after login and consent, oidc-provider\'s /auth/<uid> resume answers 303 with the code (M-5)', async () => {
    assert.ok(loginPage, 'no login page');
    const login = parseForm(loginPage.text, loginPage.url);
    let { last } = await browser.follow(login.action, {
      origin: stack.issuer,
      method: 'POST',
      form: { ...login.hidden, login: 'alice', password: 'any' },
    });
    assert.equal(last.status, 200, `after login: ${last.status}: ${last.text.slice(0, 300)}`);
    const consent = parseForm(last.text, last.url);
    assert.equal(consent?.hidden.prompt, 'consent', 'no consent form after login');

    const mark = stack.upstream.seen.length;
    const done = await browser.follow(consent.action, { origin: stack.issuer, method: 'POST', form: consent.hidden });
    last = done.last;
    assert.equal(last.status, 303, `after consent: ${last.status}: ${last.text.slice(0, 300)}`);
    assert.match(new URL(last.url).pathname, /^\/auth\/[\w-]+$/, 'the code comes from the resume path');
    assert.ok(last.location.startsWith(REDIRECT_URI), `Location ${last.location}`);
    callback = new URL(last.location);
    assert.ok(callback.searchParams.get('code'), 'no code');
    secretsAndValues.push(callback.searchParams.get('code'));
    assert.equal(callback.searchParams.get('state'), pushed.state);
    assert.equal(callback.searchParams.get('iss'), stack.issuer);
    assert.deepEqual(
      upstreamAuthSince(mark).map((e) => [e.method, e.path]),
      [['GET', '/auth/<uid>']],
    );
  });

  test('the same browser re-entering /auth?client_id&request_uri after the code gets 400 and no second code (M-5, PAR-28)', async () => {
    assert.ok(callback, 'no code was issued');
    const mark = stack.upstream.seen.length;
    const res = await browser.request(pushed.url);
    assertRefusedByProxy(res, 're-entry after completion');
    assert.ok(!/code=/.test(res.headers.get('location') ?? ''), 'a second code');
    assert.deepEqual(upstreamAuthSince(mark), [], 'oidc-provider saw the completed request_uri');
  });

  test('openid-client exchanges the code at /token through the proxy', async () => {
    assert.ok(callback, 'no code was issued');
    const tokens = await client.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: pushed.pkceCodeVerifier,
      expectedState: pushed.state,
      expectedNonce: pushed.nonce,
    });
    assert.equal(typeof tokens.access_token, 'string');
    assert.ok(tokens.access_token.length > 0);
    assert.equal(tokens.token_type.toLowerCase(), 'bearer');
    const claims = tokens.claims();
    assert.equal(claims.iss, stack.issuer);
    assert.equal(claims.aud, CLIENT_ID);
    assert.equal(claims.sub, 'alice');
  });
});

describe('authorization requests without PAR', () => {
  test('pass through the proxy to oidc-provider unchanged when PAR is not required (M-1)', async () => {
    const config = await discover();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT_URI,
      scope: 'openid',
      code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
      state: client.randomState(),
    });
    assert.equal(url.origin + url.pathname, `${stack.issuer}/auth`);
    const mark = stack.upstream.seen.length;
    const { last, hops } = await new Browser('plain browser').follow(url, { origin: stack.issuer });
    assert.equal(hops[0].status, 303, `first answer ${hops[0].status}: ${hops[0].text.slice(0, 300)}`);
    assert.equal(parseForm(last.text, last.url)?.hidden.prompt, 'login', 'not oidc-provider\'s login page');
    const auth = upstreamAuthSince(mark);
    assert.equal(auth.length, 1);
    assert.equal(auth[0].method, 'GET');
    assert.deepEqual(auth[0].queryNames, [...url.searchParams.keys()].sort());
  });
});

describe('URL length: a 40 KB authorization_details through the proxy', () => {
  // 40 entries of ~1 KB each: JSON of just over 40 KB, mostly letters, so
  // that the form-encoded push stays well inside the 64 KiB PAR body limit
  // and oidc-provider's 56 KB form limit.
  const details = Array.from({ length: 40 }, (_, i) => ({
    type: RAR_TYPE,
    identifier: `entry-${i}`,
    actions: ['read'],
    data: 'x'.repeat(1000) + String(i).padStart(24, '0'),
  }));
  const json = JSON.stringify(details);

  test('the payload is as large as the test says, and too large for a GET to oidc-provider', async () => {
    assert.ok(json.length >= 40 * 1024, `${json.length} bytes`);
    // The control: the same parameter in a GET straight to oidc-provider is
    // refused by Node's HTTP server before oidc-provider sees it.
    const direct = new URL(`${stack.upstream.url}/auth`);
    direct.searchParams.set('client_id', CLIENT_ID);
    direct.searchParams.set('response_type', 'code');
    direct.searchParams.set('authorization_details', json);
    assert.ok(direct.href.length > NODE_HEADER_LIMIT);
    const res = await fetch(direct, { redirect: 'manual', signal: timeout() }).catch((e) => ({ status: `network error ${e.cause?.code ?? e.message}` }));
    assert.equal(res.status, 431, 'a 40 KB GET should not fit oidc-provider\'s header limit');
  });

  test('pushed, then redeemed: it reaches oidc-provider whole as a form POST, and the login page comes back', async () => {
    const config = await discover();
    const { url, parResponse } = await push(config, { authorization_details: json });
    assert.equal(parResponse?.status, 201, `push: ${parResponse?.status} ${JSON.stringify(parResponse?.body)}`);

    const mark = stack.upstream.seen.length;
    const detailsMark = stack.upstream.details.length;
    const browser = new Browser('large-request browser');
    const { last, hops } = await browser.follow(url, { origin: stack.issuer });
    assert.equal(hops[0].status, 303, `first answer ${hops[0].status}: ${hops[0].text.slice(0, 300)}`);
    assert.match(new URL(hops[0].location, stack.issuer).pathname, /^\/interaction\/[\w-]+$/);
    assert.equal(last.status, 200);
    const form = parseForm(last.text, last.url);
    assert.equal(form?.hidden.prompt, 'login', 'not oidc-provider\'s login page');

    const auth = upstreamAuthSince(mark).filter((e) => e.path === '/auth');
    assert.equal(auth.length, 1, `requests to oidc-provider's /auth: ${JSON.stringify(auth)}`);
    assert.equal(auth[0].method, 'POST', 'a request this large must be forwarded as a form POST');
    assert.match(auth[0].contentType ?? '', /^application\/x-www-form-urlencoded/);
    assert.ok(auth[0].contentLength > 40 * 1024, `form body of ${auth[0].contentLength} bytes`);
    assert.deepEqual(auth[0].queryNames, [], 'the POST carries its parameters in the body');
    assert.ok(auth[0].bodyNames?.includes('authorization_details'), `form names: ${auth[0].bodyNames}`);
    assert.ok(!auth[0].bodyNames.includes('request_uri'), 'request_uri reached oidc-provider');

    // oidc-provider validated exactly the pushed JSON.
    const seen = stack.upstream.details.slice(detailsMark);
    assert.ok(seen.length >= 1, 'oidc-provider validated no authorization_details');
    assert.equal(seen[0].entries, details.length);
    assert.equal(seen[0].length, json.length);
    assert.equal(seen[0].sha256, createHash('sha256').update(json).digest('hex'));
  });
});

describe('par-proxy\'s log', () => {
  test('carries no secret, request_uri, code or pushed value', () => {
    const log = stack.proxy.log();
    // The check means something only if the proxy logged its requests.
    assert.match(log, /\/par\b/, 'the proxy logged no request line');
    assert.ok(secretsAndValues.length > 5, 'nothing was pushed');
    for (const value of secretsAndValues) {
      assert.ok(!log.includes(value), `a secret or pushed value (${value.length} characters) is in the log`);
    }
    assert.ok(!log.includes('x'.repeat(100)), 'authorization_details is in the log');
  });
});
