// Starts oidc-provider (the npm package, v9, pinned in package-lock.json) on
// a free 127.0.0.1 port, in this process, as the authorization server behind
// par-proxy: its own PAR feature OFF, its development login and consent pages
// (devInteractions) ON, PKCE required, and the issuer set to the PROXY's
// public URL (par-proxy keeps the client's Host, so oidc-provider builds its
// URLs for the proxy), and POST accepted at the authorization endpoint
// (par-proxy forwards a rebuilt request too long for a GET as a form POST).
//
// Rich Authorization Requests (RFC 9396) are on, with one detail type whose
// validation records what oidc-provider received: it proves that a large
// pushed `authorization_details` reached the upstream whole.
//
// Every request to the authorization endpoint (`/auth`, `/auth/<uid>`) is
// recorded in `seen` as names only (method, path, parameter names, content
// type and length, response status): never values, so neither secrets nor
// pushed values end up in a test's output.

import { createHash } from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';

/** The authorization_details type the upstream accepts (RFC 9396 §2). */
export const RAR_TYPE = 'interop_payload';

/** The resource server those details are for (RFC 8707). */
export const RAR_RESOURCE = 'urn:tower-par:interop:api';

const AUTH_PATH = '/auth';

/**
 * Starts oidc-provider with `issuer` (the proxy's public URL, or a function
 * of the upstream's own port giving it) and `clients`
 * (oidc-provider client metadata: client_id, client_secret, redirect_uris,
 * token_endpoint_auth_method). Resolves to
 * `{ url, port, seen, details, close() }` once it listens, where `seen` is
 * the list of authorization endpoint requests and `details` the list of
 * `{ entries, length, sha256 }` of each `authorization_details` it
 * validated.
 */
export async function startUpstream({ issuer, clients }) {
  const seen = [];
  const details = [];
  const recorded = new WeakSet();

  // Listen first, so that `issuer` may name the port.
  const server = http.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();

  const provider = new Provider(typeof issuer === 'function' ? issuer(port) : issuer, {
    clients: clients.map((c) => ({
      grant_types: ['authorization_code'],
      response_types: ['code'],
      authorization_details_types: [RAR_TYPE],
      ...c,
    })),
    // Any login is accepted (devInteractions' form posts `login`).
    async findAccount(_ctx, sub) {
      return { accountId: sub, async claims() { return { sub }; } };
    },
    cookies: {
      keys: ['tower-par interop cookie key, tests only'],
      // oidc-provider allows enableHttpPostMethods only with this.
      long: { sameSite: 'none' },
    },
    // POST at the authorization endpoint (OIDC Core §3.1.2.1), off by
    // default in oidc-provider 9: par-proxy forwards a rebuilt request too
    // long for a GET as a form POST.
    enableHttpPostMethods: true,
    pkce: { required: () => true },
    ttl: { AccessToken: 300, AuthorizationCode: 60, Grant: 300, IdToken: 300, Interaction: 300, Session: 300 },
    features: {
      devInteractions: { enabled: true },
      pushedAuthorizationRequests: { enabled: false },
      // oidc-provider needs a resource server for requests that carry
      // authorization_details (RFC 9396 §9); other requests keep the
      // default (tokens for its own userinfo).
      resourceIndicators: {
        enabled: true,
        defaultResource: (ctx, _client, oneOf) =>
          oneOf ?? (ctx.oidc.params?.authorization_details ? RAR_RESOURCE : undefined),
        getResourceServerInfo: () => ({ scope: '', accessTokenFormat: 'opaque' }),
        useGrantedResource: () => true,
      },
      richAuthorizationRequests: {
        enabled: true,
        types: {
          [RAR_TYPE]: {
            validate(ctx) {
              // Called once per entry; record the parameter once per request.
              if (recorded.has(ctx)) return;
              recorded.add(ctx);
              const raw = ctx.oidc.params.authorization_details;
              details.push({
                entries: JSON.parse(raw).length,
                length: raw.length,
                sha256: createHash('sha256').update(raw).digest('hex'),
              });
            },
          },
        },
        // Policy hooks oidc-provider requires once RAR is on: keep the
        // details as requested.
        authorizationDetailsForGrantSource: (_ctx, source) => source.rar,
        authorizationDetailsForAccessToken: (_ctx, _token, source) => source.rar,
        authorizationDetailsForIntrospection: (_ctx, token) => token.rar,
      },
    },
  });
  // par-proxy adds X-Forwarded-Proto/Host; believe them.
  provider.proxy = true;

  provider.use(async (ctx, next) => {
    const isAuth = ctx.path === AUTH_PATH || ctx.path.startsWith(`${AUTH_PATH}/`);
    if (!isAuth) return next();
    const entry = {
      method: ctx.method,
      path: ctx.path.startsWith(`${AUTH_PATH}/`) ? `${AUTH_PATH}/<uid>` : ctx.path,
      host: ctx.get('host'),
      queryNames: Object.keys(ctx.query).sort(),
      contentType: ctx.get('content-type') || undefined,
      contentLength: ctx.request.length,
      bodyNames: undefined,
      status: undefined,
    };
    seen.push(entry);
    try {
      await next();
    } finally {
      entry.status = ctx.status;
      if (ctx.oidc?.body && typeof ctx.oidc.body === 'object') {
        entry.bodyNames = Object.keys(ctx.oidc.body).sort();
      }
    }
  });

  server.on('request', provider.callback());

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    seen,
    details,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
