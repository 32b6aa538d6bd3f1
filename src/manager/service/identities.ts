/**
 * Node identities: which node certificates the manager honours (docs/security.md, "Revocation").
 *
 * A certificate of the cluster CA proves a name, not that the name is still a member: `vxnet node rm` must
 * end what the removed node can do at once, and a name joined again must not let the previous holder's
 * certificate back in. So every worker join writes an identity record, `/identities/<node>`, with the join
 * time and the serial numbers of the certificates issued since that are still honoured (the current one and
 * the one it was renewed from, whose connections may still be open); a renewal replaces them, `node rm`
 * deletes the record. It lives in the store, so every manager on it honours the same certificates, and
 * `authenticate` reads it from the in-memory index that the store's watch keeps current: no store read per
 * request.
 *
 * Renewals stop at `joinedAt + maxAgeMs` (default a year): a stolen key that is renewed in time is not worth
 * anything for ever. After that, the node joins again (the worker token once it was removed, or the admin
 * token).
 */
import { VxnetError } from '../../core/errors.ts';
import { keys } from '../keys.ts';
import type { Compare } from '../store/store.ts';
import { casRetry, commit } from './cas.ts';
import { type ServiceContext, isoNow } from './context.ts';

export interface NodeIdentity {
  name: string;
  /** ISO 8601: when the node joined; renewals stop `maxAgeMs` later */
  joinedAt: string;
  /** serial numbers (hex, as X509Certificate gives them) of the certificates honoured, newest first */
  serials: string[];
  /**
   * ISO 8601, only for nodes that joined before identities were recorded: their certificates issued before
   * this moment are honoured until the first renewal (the manager never knew their serials).
   */
  legacyBefore?: string;
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** How long after its join a node may keep renewing its certificate (`--cert-max-age`). */
export const DEFAULT_CERT_MAX_AGE_MS = 365 * DAY_MS;
/** Serials honoured at once: the current certificate and the one it was renewed from. */
const HONOURED = 2;

/** Why the certificate (`serial`, valid from `notBefore`) of node `name` is not honoured, or undefined. */
export function whyRevoked(identity: NodeIdentity | undefined, name: string, certificate: { serial: string; notBefore: Date }): string | undefined {
  if (!identity) return `the certificate of node ${name} is revoked: the node was removed with "vxnet node rm"; join again with the worker token.`;
  if (identity.serials.includes(certificate.serial)) return undefined;
  if (identity.legacyBefore !== undefined && certificate.notBefore.getTime() < Date.parse(identity.legacyBefore)) return undefined;
  return `the certificate of node ${name} (serial ${certificate.serial}) is revoked: the node joined again at ${identity.joinedAt} and holds another certificate.`;
}

export function revoked(message: string): VxnetError {
  return new VxnetError('certificate_revoked', message);
}

/**
 * Records a join: the identity of `name` is now the certificate `serial` alone. `replace` (the admin token)
 * may take the name of a registered node; otherwise the node must not exist, re-checked in the store.
 */
export async function recordJoin(ctx: ServiceContext, name: string, serial: string, options: { replace: boolean; taken: () => Error }): Promise<void> {
  await casRetry(ctx, `record the join of node ${name}`, () => {
    const node = ctx.state.nodes.get(name);
    if (node && !options.replace) throw options.taken();
    const current = ctx.state.identities.get(name);
    const identity: NodeIdentity = { name, joinedAt: isoNow(ctx), serials: [serial] };
    return {
      compares: [
        { key: keys.node(name), modRevision: node?.modRevision ?? 0 },
        { key: keys.identity(name), modRevision: current?.modRevision ?? 0 },
      ],
      ops: [{ type: 'put', key: keys.identity(name), value: JSON.stringify(identity) }],
      then: () => undefined,
    };
  });
}

/** The certificate lifetime a renewal of `name` may have now: never past the end of its renewals. */
export function renewalLifetime(ctx: ServiceContext, name: string, lifetimeMs: number, maxAgeMs: number): number {
  const identity = ctx.state.identities.get(name)?.identity;
  if (!identity) throw revoked(whyRevoked(undefined, name, { serial: '', notBefore: new Date(0) })!);
  const end = Date.parse(identity.joinedAt) + maxAgeMs;
  const left = end - ctx.now();
  if (left <= 0) {
    throw new VxnetError(
      'forbidden',
      `node ${name} joined at ${identity.joinedAt} and its certificate may be renewed for ${Math.round(maxAgeMs / DAY_MS)} days after that, until ${new Date(end).toISOString()}: it must join again (after "vxnet node rm ${name}", with the worker token).`,
    );
  }
  return Math.min(lifetimeMs, left);
}

/** Records a renewal: `serial` replaces `from` (still honoured until the next renewal). */
export async function recordRenewal(ctx: ServiceContext, name: string, from: { serial: string; notBefore: Date }, serial: string): Promise<void> {
  await casRetry(ctx, `record the renewal of node ${name}`, () => {
    const current = ctx.state.identities.get(name);
    const why = whyRevoked(current?.identity, name, from);
    if (why !== undefined || !current) throw revoked(why!);
    const { legacyBefore: _legacy, ...rest } = current.identity;
    const serials = [serial, from.serial, ...current.identity.serials.filter((s) => s !== from.serial)].slice(0, HONOURED);
    return {
      compares: [{ key: keys.identity(name), modRevision: current.modRevision }],
      ops: [{ type: 'put', key: keys.identity(name), value: JSON.stringify({ ...rest, serials }) }],
      then: () => undefined,
    };
  });
}

/**
 * The compare that keeps a request made with a worker certificate from committing once that certificate
 * is no longer honoured (a `node rm` between the request's authentication and its transaction).
 */
export function honoured(ctx: ServiceContext, name: string, certificate: { serial: string; notBefore: Date }): Compare {
  const current = ctx.state.identities.get(name);
  const why = whyRevoked(current?.identity, name, certificate);
  if (why !== undefined || !current) throw revoked(why!);
  return { key: keys.identity(name), modRevision: current.modRevision };
}

/**
 * Nodes registered before identities were recorded get one at start that honours their current
 * certificates (issued before now) until they renew; renewals are counted from now.
 */
export async function recordLegacyIdentities(ctx: ServiceContext): Promise<void> {
  for (const name of [...ctx.state.nodes.keys()]) {
    if (ctx.state.identities.has(name)) continue;
    const now = isoNow(ctx);
    const identity: NodeIdentity = { name, joinedAt: now, serials: [], legacyBefore: now };
    await commit(ctx, [{ key: keys.identity(name), modRevision: 0 }], [{ type: 'put', key: keys.identity(name), value: JSON.stringify(identity) }]);
  }
}
