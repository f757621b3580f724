// Interop test: the `openid-client` npm package (v6, a certified OAuth 2.0 /
// OpenID Connect client) drives the `legacy_server` example through the
// full Pushed Authorization Request flow (RFC 9126):
//
//   discovery -> POST /par -> GET /authorize?client_id&request_uri
//   -> 303 to redirect_uri with code+state -> POST /token (PKCE S256)
//
// for each demo client (client_secret_basic, client_secret_post, none) and
// for both discovery documents (OpenID Connect Discovery and RFC 8414), and
// checks that a request_uri cannot be redeemed twice.
//
// Run: cargo build --example legacy_server && npm ci && npm test
// Override the server binary with LEGACY_SERVER_BIN=/path/to/legacy_server.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';
import { startServer } from './server.mjs';

const REDIRECT_URI = 'http://127.0.0.1:8080/cb';
const REQUEST_TIMEOUT_S = 5;
const WHOLE_RUN_LIMIT_MS = 55_000;

const CLIENTS = [
  { name: 'client_secret_basic', id: 'demo-client', auth: (secret = 'demo-secret') => client.ClientSecretBasic(secret) },
  { name: 'client_secret_post', id: 'demo-post-client', auth: (secret = 'demo-post-secret') => client.ClientSecretPost(secret) },
  { name: 'none (public client)', id: 'demo-public', auth: () => client.None() },
];

const ALGORITHMS = [
  { name: 'OpenID Connect discovery', algorithm: 'oidc', wellKnown: '/.well-known/openid-configuration' },
  { name: 'RFC 8414 discovery', algorithm: 'oauth2', wellKnown: '/.well-known/oauth-authorization-server' },
];

let server; // { issuer, log(), kill() }
let issuer;

// A hard limit for the whole file, in case something hangs outside the
// per-request timeouts.
setTimeout(() => {
  console.error(`interop: gave up after ${WHOLE_RUN_LIMIT_MS} ms\n--- server output ---\n${server?.log() ?? ''}`);
  server?.kill();
  process.exit(1);
}, WHOLE_RUN_LIMIT_MS).unref();

async function discover(c, algorithm) {
  const config = await client.discovery(new URL(issuer), c.id, undefined, c.auth(), {
    algorithm,
    timeout: REQUEST_TIMEOUT_S,
    execute: [client.allowInsecureRequests],
  });
  config.timeout = REQUEST_TIMEOUT_S;
  return config;
}

/** Pushes an authorization request; returns the /authorize URL and the checks. */
async function push(config) {
  const pkceCodeVerifier = client.randomPKCECodeVerifier();
  const code_challenge = await client.calculatePKCECodeChallenge(pkceCodeVerifier);
  const state = client.randomState();
  const url = await client.buildAuthorizationUrlWithPAR(config, {
    redirect_uri: REDIRECT_URI,
    scope: 'profile',
    code_challenge,
    code_challenge_method: 'S256',
    state,
  });
  return { url, pkceCodeVerifier, state };
}

function getAuthorize(url) {
  return fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(REQUEST_TIMEOUT_S * 1000) });
}

before(async () => {
  server = await startServer();
  issuer = server.issuer;
});

after(() => {
  server?.kill();
});

for (const alg of ALGORITHMS) {
  describe(`openid-client ${alg.name} (algorithm '${alg.algorithm}')`, () => {
    test(`${alg.wellKnown} advertises the PAR endpoint`, async () => {
      const res = await fetch(`${issuer}${alg.wellKnown}`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_S * 1000) });
      assert.equal(res.status, 200);
      const doc = await res.json();
      assert.equal(doc.issuer, issuer);
      assert.equal(doc.pushed_authorization_request_endpoint, `${issuer}/par`);
    });

    for (const c of CLIENTS) {
      test(`full PAR + authorization code + PKCE flow, ${c.name} (${c.id})`, async () => {
        const config = await discover(c, alg.algorithm);
        const md = config.serverMetadata();
        assert.equal(md.issuer, issuer);
        assert.equal(md.pushed_authorization_request_endpoint, `${issuer}/par`);

        const { url, pkceCodeVerifier, state } = await push(config);

        // The front-channel URL carries only the client_id and the reference.
        assert.equal(url.origin + url.pathname, `${issuer}/authorize`);
        assert.deepEqual([...url.searchParams.keys()].sort(), ['client_id', 'request_uri']);
        assert.equal(url.searchParams.get('client_id'), c.id);
        assert.match(url.searchParams.get('request_uri'), /^urn:ietf:params:oauth:request_uri:/);

        const res = await getAuthorize(url);
        const body = await res.text();
        assert.ok(res.status >= 300 && res.status < 400, `expected a redirect from /authorize, got ${res.status}: ${body}`);
        const location = res.headers.get('location');
        assert.ok(location, 'redirect without a Location header');
        assert.ok(location.startsWith(REDIRECT_URI), `Location ${location} does not start with ${REDIRECT_URI}`);
        const callback = new URL(location);
        assert.ok(callback.searchParams.get('code'), `no code in ${location}`);
        assert.equal(callback.searchParams.get('state'), state);
        assert.equal(callback.searchParams.get('error'), null);

        const tokens = await client.authorizationCodeGrant(config, callback, {
          pkceCodeVerifier,
          expectedState: state,
        });
        assert.equal(typeof tokens.access_token, 'string');
        assert.ok(tokens.access_token.length > 0);
        assert.equal(tokens.token_type.toLowerCase(), 'bearer');
        assert.equal(tokens.scope, 'profile');

        // One-time use: the same request_uri is refused the second time.
        const again = await getAuthorize(url);
        await again.text();
        assert.equal(again.status, 400, 'a redeemed request_uri must not be accepted again');
      });
    }
  });
}

describe('PAR endpoint behaviour seen by openid-client', () => {
  test('an unknown request_uri is rejected with 400', async () => {
    const url = new URL(`${issuer}/authorize`);
    url.searchParams.set('client_id', CLIENTS[0].id);
    url.searchParams.set('request_uri', 'urn:ietf:params:oauth:request_uri:does-not-exist');
    const res = await getAuthorize(url);
    await res.text();
    assert.equal(res.status, 400);
  });

  for (const c of CLIENTS.slice(0, 2)) {
    test(`wrong client secret (${c.name}) is rejected at /par with invalid_client`, async () => {
      const bad = { ...c, auth: () => c.auth('not-the-secret') };
      const config = await discover(bad, 'oauth2');
      let err;
      try {
        await push(config);
      } catch (e) {
        err = e;
      }
      assert.ok(err, 'the push with a wrong secret was accepted');
      // openid-client surfaces a 401 carrying a WWW-Authenticate challenge
      // as WWWAuthenticateChallengeError (body left unread on err.response),
      // and other OAuth error responses as ResponseBodyError.
      if (err instanceof client.WWWAuthenticateChallengeError) {
        assert.equal(err.status, 401);
        assert.equal(err.cause[0].scheme, 'basic');
        const body = await err.response.json();
        assert.equal(body.error, 'invalid_client');
      } else if (err instanceof client.ResponseBodyError) {
        assert.ok(err.status === 400 || err.status === 401, `status ${err.status}`);
        assert.equal(err.error, 'invalid_client');
      } else {
        throw err;
      }
    });
  }

  test('a request_uri pushed by one client cannot be redeemed by another', async () => {
    const config = await discover(CLIENTS[0], 'oauth2');
    const { url } = await push(config);
    const stolen = new URL(url);
    stolen.searchParams.set('client_id', CLIENTS[2].id);
    const res = await getAuthorize(stolen);
    await res.text();
    assert.equal(res.status, 400);
  });
});
