// Starts a server binary (the `legacy_server` example, or `par-proxy`) on a
// free 127.0.0.1 port for one test file, and makes sure it never outlives
// that file.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const STARTUP_TIMEOUT_MS = 20_000;

export const serverBin = process.env.LEGACY_SERVER_BIN
  ? path.resolve(process.env.LEGACY_SERVER_BIN)
  : path.resolve(HERE, '../../target/debug/examples/legacy_server');

export const parProxyBin = process.env.PAR_PROXY_BIN
  ? path.resolve(process.env.PAR_PROXY_BIN)
  : path.resolve(HERE, '../../target/debug/par-proxy');

// Settings of the demo that the caller's environment must not leak into it.
const DEMO_VARIABLES = [
  'ADDR',
  'PAR_ISSUER',
  'PAR_CLIENTS',
  'PAR_REQUIRED',
  'PAR_TTL_SECS',
  'PAR_METADATA',
  'PAR_PROFILE',
  'PAR_FAPI_KEY',
  'PAR_DPOP_NONCES',
  'PAR_DPOP_NONCE_SECRET',
  'PAR_DEMO_LOGIN',
  'PAR_REDEMPTION',
  'PAR_FLOW_WINDOW_SECS',
  'PAR_REDIS_URL',
  'PAR_REDIS_SECRET',
];

export function freePort() {
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

function canConnect(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const done = (ok) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Spawns `bin` with `args(port)` and `env(port)` (the caller's environment
 * less the names in `scrub`) on a free port, and resolves to
 * `{ port, log(), kill(), running() }` once it accepts connections on
 * 127.0.0.1:port. The port is free when picked; another process could take
 * it before the child binds, so a child that exits early is retried (three
 * attempts in all). With `port` given (a child whose port is in its
 * configuration file), that port is used and a child that exits early is
 * not retried: the caller picks a new port. `name` labels errors.
 */
export async function startProcess({ bin, name, args = () => [], env = () => ({}), scrub = [], hint = '', port: fixedPort }) {
  if (!existsSync(bin)) {
    throw new Error(`${name} binary not found at ${bin}.\n${hint}`);
  }
  const attempts = fixedPort === undefined ? 3 : 1;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const port = fixedPort ?? (await freePort());
    let log = '';
    const childEnv = { ...process.env };
    for (const k of Object.keys(childEnv)) {
      if (scrub.some((s) => (s.endsWith('*') ? k.startsWith(s.slice(0, -1)) : k === s))) delete childEnv[k];
    }
    Object.assign(childEnv, env(port));
    const child = spawn(bin, args(port), {
      env: childEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (d) => (log += d));
    child.stderr.on('data', (d) => (log += d));
    let spawnError;
    child.once('error', (e) => (spawnError = e));
    const running = () => child.exitCode === null && child.signalCode === null;
    const kill = () => {
      if (running()) child.kill('SIGKILL');
    };
    // Never leave the child behind, whatever happens to this process.
    process.on('exit', kill);

    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (spawnError) throw new Error(`cannot start ${bin}: ${spawnError.message}`);
      if (!running()) break;
      if (await canConnect(port)) {
        return { port, log: () => log, kill, running };
      }
      await sleep(100);
    }
    const exited = !running();
    kill();
    if (!exited) {
      throw new Error(`${name} did not accept connections on port ${port} within ${STARTUP_TIMEOUT_MS} ms\n${log}`);
    }
    if (attempt === attempts) {
      throw new Error(`${name} exited early (code ${child.exitCode}):\n${log}`);
    }
  }
  throw new Error('unreachable');
}

/**
 * Starts legacy_server with `args` (after `--addr`) and `env` (given the
 * port, so that PAR_ISSUER can name it). Resolves to
 * `{ issuer, log(), kill() }` once it accepts connections.
 */
export async function startServer({ args = [], env = () => ({}) } = {}) {
  const { port, log, kill } = await startProcess({
    bin: serverBin,
    name: 'legacy_server',
    args: (p) => ['--addr', `127.0.0.1:${p}`, ...args],
    env,
    scrub: DEMO_VARIABLES,
    hint:
      'Build it first: cargo build --example legacy_server (from the crate root), ' +
      'or set LEGACY_SERVER_BIN to its path.',
  });
  return { issuer: `http://127.0.0.1:${port}`, log, kill };
}
