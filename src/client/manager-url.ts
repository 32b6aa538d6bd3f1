/**
 * The manager's address as users write it (`https://ADDR:PORT`, `unix:/path`, or plain `http://` for test
 * stand-ins), parsed into where to connect. Apart from the HTTP client so that the CLI can check `--manager`
 * without loading node:http, node:https and node:tls on its start-up path.
 */
import { VxnetError } from '../core/errors.ts';

/** Where the manager listens: a TCP host and port (TLS for https), or a unix socket path. */
export type ManagerTarget =
  | { kind: 'tls'; url: string; host: string; port: number }
  | { kind: 'tcp'; url: string; host: string; port: number }
  | { kind: 'unix'; url: string; socketPath: string };

const URL_FORMS = 'use https://ADDR:PORT or unix:/path/to.sock';

/**
 * Parses `--manager`/`VXNET_MANAGER`: one manager URL, or several separated by commas (managers sharing one
 * etcd store; clients try the next when one is down). Every one is checked; they must be of one kind (all
 * https://, or all unix:), since the client authenticates the same way to each.
 */
export function parseManagerUrls(text: string): ManagerTarget[] {
  const parts = typeof text === 'string' ? text.split(',').map((part) => part.trim()) : [text];
  const targets = parts.map((part) => parseOne(part));
  if (new Set(targets.map((t) => (t.kind === 'unix' ? 'unix' : t.kind))).size > 1) {
    throw new VxnetError('bad_request', `the managers in "${text}" mix kinds of URL: list only https:// URLs or only unix: sockets.`);
  }
  if (new Set(targets.map((t) => t.url)).size !== targets.length) {
    throw new VxnetError('bad_request', `"${text}" names one manager twice.`);
  }
  return targets;
}

/** Parses a manager URL (or a comma-separated list: the first of them, all checked), or throws a `bad_request` VxnetError with a sentence saying what is wrong. */
export function parseManagerUrl(url: string): ManagerTarget {
  return parseManagerUrls(url)[0]!;
}

function parseOne(url: string): ManagerTarget {
  if (typeof url !== 'string' || url.trim() === '') {
    throw new VxnetError('bad_request', `the manager URL is empty: ${URL_FORMS}.`);
  }
  if (url.startsWith('unix:')) {
    // "unix:/run/vxnet.sock", and the equally common "unix:///run/vxnet.sock"
    const socketPath = url.startsWith('unix://') ? url.slice('unix://'.length) : url.slice('unix:'.length);
    if (!socketPath.startsWith('/') || socketPath.includes('\0')) {
      throw new VxnetError('bad_request', `manager URL "${url}" is invalid: a unix socket needs an absolute path, as in unix:/run/vxnet.sock.`);
    }
    return { kind: 'unix', url, socketPath };
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new VxnetError('bad_request', `manager URL "${url}" is invalid: ${URL_FORMS}.`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new VxnetError('bad_request', `manager URL "${url}" is not supported: ${URL_FORMS}.`);
  }
  if (parsed.username !== '' || parsed.password !== '') {
    // Never echo the URL here: it holds a credential.
    throw new VxnetError('bad_request', 'the manager URL must not contain a user or password: pass the token with --token or VXNET_TOKEN.');
  }
  if ((parsed.pathname !== '/' && parsed.pathname !== '') || parsed.search !== '' || parsed.hash !== '') {
    throw new VxnetError('bad_request', `manager URL "${url}" must not have a path or query: ${URL_FORMS}.`);
  }
  const host = parsed.hostname.startsWith('[') ? parsed.hostname.slice(1, -1) : parsed.hostname;
  if (host === '') throw new VxnetError('bad_request', `manager URL "${url}" has no host: ${URL_FORMS}.`);
  if (parsed.protocol === 'https:') {
    return { kind: 'tls', url: `https://${parsed.host}`, host, port: parsed.port === '' ? 443 : Number(parsed.port) };
  }
  const port = parsed.port === '' ? 80 : Number(parsed.port);
  return { kind: 'tcp', url: `http://${parsed.host}`, host, port };
}
