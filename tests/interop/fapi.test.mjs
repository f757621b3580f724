// FAPI 2.0 interop: `openid-client` 6 against `legacy_server --profile fapi2`
// (its own server process, on its own 127.0.0.1 port, PAR_ISSUER set to
// that address), with clients registered through a clients file that this
// test writes (`--clients FILE`, RFC 7591 members, inline `jwks`):
//
//   discovery -> POST /par (private_key_jwt + DPoP proof, nonce retry)
//   -> GET /authorize?client_id&request_uri -> 303 with code, state, iss
//   -> POST /token (private_key_jwt + DPoP proof, PKCE S256) -> token_type DPoP
//
// for an ES256 and a PS256 client key generated here with Web Crypto. It
// checks that the code is bound to the push's DPoP key (RFC 9449 §10.1,
// FAPI-12): a token request with another DPoP key, or without DPoP, fails
// and leaves the code to its holder; that a code is exchanged once
// (FAPI-21); and that a client_secret_basic client and a push without PKCE
// are refused (FAPI-5, FAPI-16).
//
// Run: cargo build --example legacy_server && npm ci && npm test

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as client from 'openid-client';
import { startServer } from './server.mjs';

const REDIRECT_URI = 'http://127.0.0.1:8080/cb';
const REQUEST_TIMEOUT_S = 5;
const WHOLE_RUN_LIMIT_MS = 55_000;

// The client keys: private halves stay here, public JWKs go to the file.
const KEYS = [
  {
    id: 'fapi-es256',
    alg: 'ES256',
    params: { name: 'ECDSA', namedCurve: 'P-256' },
    // Tokens need DPoP because the code is bound (RFC 9449 §10.1).
    dpopBound: false,
  },
  {
    id: 'fapi-ps256',
    alg: 'PS256',
    params: { name: 'RSA-PSS', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    // Tokens need DPoP because the client says so too (RFC 9449 §5.2).
    dpopBound: true,
  },
];

let server; // { issuer, log(), kill() }
let issuer;
let dir;

setTimeout(() => {
  console.error(`fapi interop: gave up after ${WHOLE_RUN_LIMIT_MS} ms\n--- server output ---\n${server?.log() ?? ''}`);
  server?.kill();
  process.exit(1);
}, WHOLE_RUN_LIMIT_MS).unref();

/** The public JWK a client registers: only the key members, kid, alg, use. */
async function publicJwk(publicKey, kid, alg) {
  const full = await crypto.subtle.exportKey('jwk', publicKey);
  const members = full.kty === 'EC' ? ['kty', 'crv', 'x', 'y'] : ['kty', 'n', 'e'];
  const jwk = Object.fromEntries(members.map((m) => [m, full[m]]));
  return { ...jwk, kid, alg, use: 'sig' };
}

async function writeClientsFile() {
  const clients = [];
  for (const k of KEYS) {
    const pair = await crypto.subtle.generateKey(k.params, true, ['sign', 'verify']);
    k.privateKey = pair.privateKey;
    k.kid = `${k.id}-key`;
    clients.push({
      client_id: k.id,
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: k.alg,
      jwks: { keys: [await publicJwk(pair.publicKey, k.kid, k.alg)] },
      redirect_uris: [REDIRECT_URI],
      dpop_bound_access_tokens: k.dpopBound,
    });
  }
  // Registered, but refused under FAPI 2.0 (FAPI-5).
  clients.push({
    client_id: 'fapi-basic',
    token_endpoint_auth_method: 'client_secret_basic',
    client_secret: 'basic-secret',
    redirect_uris: [REDIRECT_URI],
  });
  dir = mkdtempSync(path.join(os.tmpdir(), 'tower-par-fapi-interop-'));
  const file = path.join(dir, 'clients.json');
  writeFileSync(file, JSON.stringify({ clients }, null, 2), { mode: 0o600 });
  return file;
}

async function discover(id, auth) {
  const config = await client.discovery(new URL(issuer), id, undefined, auth, {
    timeout: REQUEST_TIMEOUT_S,
    execute: [client.allowInsecureRequests],
  });
  config.timeout = REQUEST_TIMEOUT_S;
  return config;
}

const keyAuth = (k) => client.PrivateKeyJwt({ key: k.privateKey, kid: k.kid });

function getAuthorize(url) {
  return fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(REQUEST_TIMEOUT_S * 1000) });
}

/** The OAuth error code of a rejected openid-client call. */
async function oauthError(promise) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, 'the request was accepted');
  if (err instanceof client.WWWAuthenticateChallengeError) {
    const body = await err.response.json();
    return { status: err.status, error: body.error };
  }
  if (err instanceof client.ResponseBodyError) {
    return { status: err.status, error: err.error };
  }
  throw err;
}

before(async () => {
  const file = await writeClientsFile();
  server = await startServer({
    args: ['--profile', 'fapi2', '--clients', file],
    env: (port) => ({ PAR_ISSUER: `http://127.0.0.1:${port}` }),
  });
  issuer = server.issuer;
});

after(() => {
  server?.kill();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('openid-client FAPI 2.0 against legacy_server --profile fapi2', () => {
  test('discovery advertises what FAPI 2.0 enforces', async () => {
    const config = await discover(KEYS[0].id, keyAuth(KEYS[0]));
    const md = config.serverMetadata();
    assert.equal(md.issuer, issuer);
    assert.equal(md.pushed_authorization_request_endpoint, `${issuer}/par`);
    assert.equal(md.require_pushed_authorization_requests, true);
    assert.deepEqual(md.token_endpoint_auth_methods_supported, ['private_key_jwt']);
    assert.deepEqual([...md.token_endpoint_auth_signing_alg_values_supported].sort(), ['ES256', 'EdDSA', 'PS256']);
    assert.deepEqual([...md.dpop_signing_alg_values_supported].sort(), ['ES256', 'EdDSA', 'PS256']);
    assert.deepEqual(md.code_challenge_methods_supported, ['S256']);
    assert.equal(md.authorization_response_iss_parameter_supported, true);
  });

  for (const k of KEYS) {
    test(`private_key_jwt (${k.alg}) + DPoP + PAR: the code is bound to the DPoP key`, async () => {
      const config = await discover(k.id, keyAuth(k));
      const dpop = client.getDPoPHandle(config, await client.randomDPoPKeyPair());

      const pkceCodeVerifier = client.randomPKCECodeVerifier();
      const code_challenge = await client.calculatePKCECodeChallenge(pkceCodeVerifier);
      const state = client.randomState();
      const url = await client.buildAuthorizationUrlWithPAR(
        config,
        { redirect_uri: REDIRECT_URI, scope: 'profile', code_challenge, code_challenge_method: 'S256', state },
        { DPoP: dpop },
      );
      // FAPI-24: the front channel carries only client_id and request_uri.
      assert.deepEqual([...url.searchParams.keys()].sort(), ['client_id', 'request_uri']);

      const res = await getAuthorize(url);
      const body = await res.text();
      // FAPI-22: 303, never 307.
      assert.equal(res.status, 303, `expected 303 from /authorize, got ${res.status}: ${body}`);
      const callback = new URL(res.headers.get('location'));
      assert.equal(callback.origin + callback.pathname, REDIRECT_URI);
      assert.ok(callback.searchParams.get('code'), `no code in ${callback}`);
      // FAPI-19, RFC 9207.
      assert.equal(callback.searchParams.get('iss'), issuer);

      const checks = { pkceCodeVerifier, expectedState: state };
      // Another DPoP key, then none: refused, and the code stays usable.
      const other = client.getDPoPHandle(config, await client.randomDPoPKeyPair());
      const wrongKey = await oauthError(client.authorizationCodeGrant(config, callback, checks, undefined, { DPoP: other }));
      assert.deepEqual(wrongKey, { status: 400, error: 'invalid_dpop_proof' });
      const noProof = await oauthError(client.authorizationCodeGrant(config, callback, checks));
      assert.deepEqual(noProof, { status: 400, error: 'invalid_dpop_proof' });

      const tokens = await client.authorizationCodeGrant(config, callback, checks, undefined, { DPoP: dpop });
      assert.equal(typeof tokens.access_token, 'string');
      assert.ok(tokens.access_token.length > 0);
      assert.equal(tokens.token_type.toLowerCase(), 'dpop');
      assert.equal(tokens.scope, 'profile');

      // FAPI-21: a used code is refused.
      const again = await oauthError(client.authorizationCodeGrant(config, callback, checks, undefined, { DPoP: dpop }));
      assert.deepEqual(again, { status: 400, error: 'invalid_grant' });
    });
  }

  test('a client_secret_basic client is refused at /par (FAPI-5)', async () => {
    const config = await discover('fapi-basic', client.ClientSecretBasic('basic-secret'));
    const verifier = client.randomPKCECodeVerifier();
    const refused = await oauthError(
      client.buildAuthorizationUrlWithPAR(config, {
        redirect_uri: REDIRECT_URI,
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
      }),
    );
    assert.deepEqual(refused, { status: 401, error: 'invalid_client' });
  });

  test('a push without PKCE is refused (FAPI-16)', async () => {
    const config = await discover(KEYS[0].id, keyAuth(KEYS[0]));
    const dpop = client.getDPoPHandle(config, await client.randomDPoPKeyPair());
    const refused = await oauthError(
      client.buildAuthorizationUrlWithPAR(config, { redirect_uri: REDIRECT_URI, state: client.randomState() }, { DPoP: dpop }),
    );
    assert.deepEqual(refused, { status: 400, error: 'invalid_request' });
  });
});
