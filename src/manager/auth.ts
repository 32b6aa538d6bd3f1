/**
 * Who is calling the manager, and what they may do (docs/security.md, "Control-plane identity").
 *
 * Credentials, in this order:
 * 1. `Authorization: Bearer TOKEN`: the admin token (everything), or the worker token, which admits only
 *    `POST /v1/join`. A token that is present but unknown is refused, never ignored.
 * 2. The client certificate of a TLS connection, verified by OpenSSL against the cluster CA during the
 *    handshake: O=vxnet-worker makes the caller the agent of node CN, O=vxnet-admin an admin. A node
 *    certificate must also be one the node's identity record honours (service/identities.ts): not one of
 *    a node removed with `vxnet node rm`, nor of an earlier join of its name.
 * 3. Nothing: only the public routes (`GET /v1/ca`).
 *
 * A worker acts for one node: it registers, heartbeats and watches only that node, reports the status of
 * only that node's endpoints, and reads only what its watch stream would tell it anyway. Those checks need
 * the request (a path parameter, a body field, an endpoint's node), so the handlers in http.ts make them
 * with `requireOwnNode`; the route table says only the least privileged role a route admits.
 */
import { type KeyObject, X509Certificate, createPublicKey } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { TLSSocket } from 'node:tls';
import { VxnetError } from '../core/errors.ts';
import type { CertificateResponse, JoinRequest, RenewCertificateRequest, TokenResponse } from '../core/model.ts';
import { requireName } from '../core/names.ts';
import { identityOf } from '../pki/identity.ts';
import { isP256Key } from '../pki/x509.ts';
import type { ClusterAuthority } from './authority.ts';
import type { ManagerService } from './service.ts';
import { type NodeIdentity, revoked, whyRevoked } from './service/identities.ts';
import type { JoinTokens, Role } from './tokens.ts';

export type Principal =
  | { kind: 'anonymous' }
  /** a bearer token: admin, or the worker join token */
  | { kind: 'token'; role: Role }
  /** a client certificate of the cluster CA */
  | { kind: 'certificate'; role: Role; name: string; notAfter: Date; serial: string; notBefore: Date };

/** The least privileged caller a route admits. */
export type Access = 'public' | 'join' | 'worker' | 'admin';

export interface Security {
  authority: ClusterAuthority;
  tokens: JoinTokens;
  /** lifetime of the node and admin certificates the manager issues */
  certLifetimeMs: number;
  /** how long after its join a node may renew its certificate (DEFAULT_CERT_MAX_AGE_MS) */
  certMaxAgeMs: number;
  /** the identity record of a node, from the in-memory index of the store (ClusterState.identities) */
  nodeIdentity(name: string): NodeIdentity | undefined;
}

/** What a request presented, as the transport saw it. */
export interface PresentedCredentials {
  authorization: string | undefined;
  /** the client certificate of a TLS connection */
  certificate?: X509Certificate | undefined;
  /** why TLS did not accept that certificate (undefined: it did) */
  certificateError?: string | undefined;
}

/**
 * The client certificate of each TLS connection, read once: an agent sends its heartbeats and status reports
 * over one keep-alive connection, and reading and parsing the certificate again per request was ~2% of a
 * manager's CPU under churn (bench/scale --cpu-prof). It cannot change within a connection: the listeners
 * speak TLS 1.3 only (listeners.ts), which has no renegotiation.
 */
const connectionCertificates = new WeakMap<TLSSocket, X509Certificate | undefined>();
/** What a certificate object names, parsed once per object (so once per connection, with the map above). */
const identities = new WeakMap<X509Certificate, ReturnType<typeof identityOf>>();

function certificateOf(socket: TLSSocket): X509Certificate | undefined {
  if (connectionCertificates.has(socket)) return connectionCertificates.get(socket);
  const certificate = socket.getPeerX509Certificate();
  connectionCertificates.set(socket, certificate);
  return certificate;
}

function identityOfOnce(certificate: X509Certificate): ReturnType<typeof identityOf> {
  if (identities.has(certificate)) return identities.get(certificate);
  const identity = identityOf(certificate);
  identities.set(certificate, identity);
  return identity;
}

/** The credentials of a request received by node:http or node:https. */
export function presentedBy(req: IncomingMessage): PresentedCredentials {
  const socket = req.socket;
  if (!(socket instanceof TLSSocket)) return { authorization: req.headers.authorization };
  const certificate = certificateOf(socket);
  return {
    authorization: req.headers.authorization,
    certificate,
    certificateError: certificate && !socket.authorized ? String(socket.authorizationError ?? 'not verified') : undefined,
  };
}

/**
 * Who the credentials prove the caller to be. `joining`: the request is POST /v1/join, so a token refused
 * was meant as the worker token (or the admin one), and the message points at the worker token.
 */
export function authenticate(security: Security, presented: PresentedCredentials, now: Date = new Date(), joining = false): Principal {
  const header = presented.authorization;
  if (header !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw new VxnetError('unauthorized', 'the Authorization header must be "Bearer TOKEN".');
    const role = security.tokens.roleOf(match[1]!);
    if (role) return { kind: 'token', role };
    if (security.tokens.isOfAnotherCluster(match[1]!)) {
      throw new VxnetError('unauthorized', "the token carries another cluster's CA digest: it is not a token of this manager.");
    }
    throw new VxnetError(
      'unauthorized',
      joining
        ? 'this token was rotated or is unknown: join with the current worker token (DATA_DIR/worker.token on the manager).'
        : 'this token was rotated or is unknown: use the current admin token (DATA_DIR/admin.token on the manager).',
    );
  }
  const certificate = presented.certificate;
  if (certificate) {
    if (presented.certificateError !== undefined) {
      throw new VxnetError('unauthorized', `the client certificate is not valid for this cluster (${presented.certificateError}).`);
    }
    const identity = identityOfOnce(certificate);
    if (!identity || identity.role === 'manager') {
      throw new VxnetError('unauthorized', 'the client certificate names neither a node nor an admin of this cluster.');
    }
    // TLS checked the dates at the handshake; a keep-alive connection can outlive the certificate.
    if (now > identity.notAfter) {
      throw new VxnetError('unauthorized', `the client certificate expired at ${identity.notAfter.toISOString()}.`);
    }
    const held = { serial: identity.serialNumber, notBefore: identity.notBefore };
    if (identity.role === 'worker') {
      const why = whyRevoked(security.nodeIdentity(identity.name), identity.name, held);
      if (why !== undefined) throw revoked(why);
    }
    return { kind: 'certificate', role: identity.role, name: identity.name, notAfter: identity.notAfter, ...held };
  }
  return { kind: 'anonymous' };
}

export function isAdmin(principal: Principal): boolean {
  return principal.kind !== 'anonymous' && principal.role === 'admin';
}

/** The node a worker certificate acts for; undefined for admins, whom no node check restricts. */
export function actingNode(principal: Principal): string | undefined {
  return principal.kind === 'certificate' && principal.role === 'worker' ? principal.name : undefined;
}

/** Refuses a route to a caller below its access level. `what` names the request, e.g. "POST /v1/networks". */
export function authorize(access: Access, principal: Principal, what: string): void {
  if (access === 'public' || isAdmin(principal)) return;
  if (principal.kind === 'anonymous') {
    throw new VxnetError(
      'unauthorized',
      access === 'join'
        ? `${what} needs a join token: send "Authorization: Bearer TOKEN".`
        : `${what} needs a client certificate of this cluster or the admin token ("Authorization: Bearer TOKEN").`,
    );
  }
  if (access === 'join') {
    if (principal.kind === 'token') return;
    throw new VxnetError('forbidden', `${what} needs a join token; a certificate is renewed with POST /v1/certificates/renew.`);
  }
  if (principal.kind === 'token') {
    // the worker token: the old bearer credential of agents, now good for joining only
    throw new VxnetError('forbidden', `the worker token only admits POST /v1/join; ${what} needs a node certificate or the admin token.`);
  }
  if (access === 'admin') {
    throw new VxnetError('forbidden', `${what} needs the admin token or an admin certificate; the certificate of node ${principal.name} cannot do it.`);
  }
}

/** For worker certificates: refuses a request that concerns another node than the caller's own. */
export function requireOwnNode(principal: Principal, node: string, what: string): void {
  const self = actingNode(principal);
  if (self !== undefined && self !== node) {
    throw new VxnetError('forbidden', `node ${self} may only ${what} of its own node, not of node ${node}.`);
  }
}

// -----------------------------------------------------------------------------------------------------
// The PKI routes

/** `GET /v1/ca`: public; clients check it against the digest in their token before trusting it. */
export function caResponse(security: Security): { certificate: string; digest: string } {
  return { certificate: security.authority.pem, digest: security.authority.digest };
}

/**
 * `POST /v1/join`: the worker token gets a worker certificate; the admin token either kind. A node name is
 * an identity: the worker token never gets a certificate for a node that is registered (its holder could
 * then register that node at another address and take its traffic); the node must be removed first. The
 * admin token may (an administrator re-admitting a node whose certificate was lost).
 */
export async function join(
  security: Security,
  service: ManagerService,
  principal: Principal,
  req: JoinRequest,
  log?: (line: string) => void,
): Promise<CertificateResponse> {
  if (principal.kind !== 'token') throw new VxnetError('forbidden', 'POST /v1/join needs a join token.');
  const role = req.role ?? 'worker';
  if (role !== 'worker' && role !== 'admin') throw new VxnetError('bad_request', 'field "role" must be "worker" or "admin".');
  if (role === 'admin' && principal.role !== 'admin') {
    throw new VxnetError('forbidden', 'an admin certificate needs the admin token; the worker token joins nodes only.');
  }
  const name = requireName(req.name, role === 'worker' ? 'node' : 'admin');
  const replace = principal.role === 'admin';
  if (role === 'admin') return issue(security, role, name, publicKeyOf(req.publicKey), security.certLifetimeMs, log, 'issued');
  if (!replace && service.state.nodes.has(name)) throw nameTaken(name);
  const publicKey = publicKeyOf(req.publicKey);
  // issued first, honoured only once its serial is recorded: a join that loses a race leaves a useless certificate
  const { response, serial } = issueNode(security, name, publicKey, security.certLifetimeMs);
  await service.recordJoin(name, serial, { replace, taken: () => nameTaken(name) });
  log?.(`issued the worker certificate of ${name} (serial ${serial}, valid until ${response.notAfter})`);
  return response;
}

export function nameTaken(name: string): VxnetError {
  return new VxnetError(
    'node_exists',
    `node ${name} is registered already, and the worker token cannot take over a registered node's name: remove it first with "vxnet node rm ${name}", or pick another name.`,
  );
}

/** `POST /v1/certificates/renew`: the same identity, a new key and validity, for the certificate's holder. */
export async function renew(
  security: Security,
  service: ManagerService,
  principal: Principal,
  req: RenewCertificateRequest,
  log?: (line: string) => void,
): Promise<CertificateResponse> {
  if (principal.kind !== 'certificate') {
    throw new VxnetError('forbidden', 'POST /v1/certificates/renew renews the client certificate of the connection, and there is none.');
  }
  const publicKey = publicKeyOf(req.publicKey);
  if (principal.role !== 'worker') return issue(security, principal.role, principal.name, publicKey, security.certLifetimeMs, log, 'renewed');
  const lifetimeMs = service.renewalLifetime(principal.name, security.certLifetimeMs, security.certMaxAgeMs);
  const { response, serial } = issueNode(security, principal.name, publicKey, lifetimeMs);
  await service.recordRenewal(principal.name, principal, serial);
  log?.(`renewed the worker certificate of ${principal.name} (serial ${serial}, valid until ${response.notAfter})`);
  return response;
}

/** `POST /v1/tokens/:role/rotate` (admin). */
export function rotate(security: Security, role: string, log?: (line: string) => void): TokenResponse {
  if (role !== 'worker' && role !== 'admin') throw new VxnetError('bad_request', `there are worker and admin tokens, no "${role}" token.`);
  const token = security.tokens.rotate(role);
  log?.(`the ${role} token was rotated; the old one is refused from now on`);
  return { role, token };
}

function issue(
  security: Security,
  role: Role,
  name: string,
  publicKey: KeyObject,
  lifetimeMs: number,
  log: ((line: string) => void) | undefined,
  verb: string,
): CertificateResponse {
  const { certificate, identity } = security.authority.issue({ role, name, publicKey, lifetimeMs });
  log?.(`${verb} the ${role} certificate of ${name} (serial ${identity.serialNumber}, valid until ${identity.notAfter.toISOString()})`);
  return { certificate, ca: security.authority.pem, role, name, notAfter: identity.notAfter.toISOString() };
}

/** A worker certificate, not logged yet: it counts only once its identity record holds its serial. */
function issueNode(security: Security, name: string, publicKey: KeyObject, lifetimeMs: number): { response: CertificateResponse; serial: string } {
  const { certificate, identity } = security.authority.issue({ role: 'worker', name, publicKey, lifetimeMs });
  return {
    response: { certificate, ca: security.authority.pem, role: 'worker', name, notAfter: identity.notAfter.toISOString() },
    serial: identity.serialNumber,
  };
}

function publicKeyOf(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch {
    throw new VxnetError('bad_request', 'field "publicKey" must be a PEM public key (SubjectPublicKeyInfo).');
  }
  if (key.type !== 'public' || !isP256Key(key)) throw new VxnetError('bad_request', 'field "publicKey" must be an ECDSA P-256 public key.');
  return key;
}

/** For in-process requests: a PEM client certificate checked as TLS would check it. */
export function presentedCertificate(security: Security, pem: string): Pick<PresentedCredentials, 'certificate' | 'certificateError'> {
  const certificate = new X509Certificate(pem);
  return { certificate, certificateError: security.authority.check(certificate) };
}
