/**
 * Writing vxnet's nftables tables in the host namespace: table ip vxnet (the firewall and the VXLAN peer
 * filter) and table bridge vxnet (anti-spoofing, antispoof.ts; only in the layout without a namespace per
 * network, where the bridges' ports are in the host namespace), in one `nft -f -` transaction.
 */
import type { DesiredState, ReconcileResult } from '../dataplane.ts';
import { messageOf } from '../../core/errors.ts';
import { deleteAntispoofLines, planAntispoof, type AntispoofState, type PortBinding } from './antispoof.ts';
import type { Runner } from './exec.ts';
import { planFirewall } from './nftables.ts';
import type { TablesState } from './read.ts';
import type { TableCache } from './table-cache.ts';
import { UNDERLAY6_TABLE } from './underlay6.ts';

/**
 * Installs table ip vxnet when it differs from what is there, and brings table bridge vxnet
 * (anti-spoofing) up to date, in one `nft -f -` transaction. Returns the tables now in effect, and `down`
 * (the sentence every pending endpoint is given) when the wanted tables could not be installed.
 */
export async function applyTables(
  deps: { run: Runner; log: (line: string) => void; tables: TableCache | undefined },
  networks: DesiredState['networks'],
  installed: TablesState,
  filter: DesiredState['vxlanFilter'],
  /** absent: the ports are in the networks' namespaces, and the host keeps no table bridge vxnet */
  ports: { wanted: PortBinding[]; keep: ReadonlySet<string> } | undefined,
  result: ReconcileResult,
  errors: string[],
  signal?: AbortSignal,
): Promise<{ tables: TablesState; down?: string }> {
  const firewall = planFirewall(networks, installed.firewall, filter);
  const have = installed.antispoof;
  let antispoof: { lines: string[]; changes: number; after: AntispoofState } = { lines: [], changes: 0, after: have };
  // wanted exactly when table ip vxnet is (planFirewall): networks or a filter
  if (ports && (networks.length > 0 || filter.ports.length > 0)) antispoof = planAntispoof(ports.wanted, have, ports.keep);
  else if (have.present || have.unreadable !== undefined) antispoof = { lines: deleteAntispoofLines(), changes: 0, after: { present: false, macs: [], ips: [] } };
  if (firewall.action === 'none' && antispoof.lines.length === 0) return { tables: installed };
  const script = (firewall.action === 'none' ? '' : firewall.script) + antispoof.lines.map((line) => `${line}\n`).join('');
  const after: TablesState = {
    firewall:
      firewall.action === 'none'
        ? installed.firewall
        : firewall.action === 'delete'
          ? { present: false }
          : {
              present: true,
              hash: firewall.hash,
              ...(firewall.hash6 ? { hash6: firewall.hash6 } : {}),
              ...(firewall.underlay6 ? { underlay6: { present: true, hash: firewall.hash } } : {}),
            },
    antispoof: antispoof.after,
  };
  try {
    const { pid } = await deps.run.run(['nft', '-f', '-'], { input: script, signal });
    deps.tables?.wrote(pid, after);
    result.changes += (firewall.action === 'none' ? 0 : 1) + antispoof.changes;
    if (firewall.action === 'delete') deps.log(`deleted nftables table ip vxnet${antispoof.lines.length ? ' and bridge vxnet' : ''}`);
    if (firewall.action === 'replace') {
      deps.log(
        `installed nftables table ip vxnet${firewall.underlay6 ? ` and ip6 ${UNDERLAY6_TABLE}` : ''} (rules ${firewall.hash}; VXLAN ports ${filter.ports.join(', ') || 'none'} ` +
          `accepted from ${filter.allowedSources.length} member node${filter.allowedSources.length === 1 ? '' : 's'})`,
      );
    }
    return { tables: after };
  } catch (err) {
    deps.tables?.invalidate();
    if (signal?.aborted) throw err;
    const detail = messageOf(err);
    const message = `applying the nftables table ip vxnet failed: ${detail}`;
    errors.push(message);
    deps.log(message);
    if (firewall.action === 'delete') return { tables: installed };
    return { tables: installed, down: `VXLAN peer filter could not be installed: ${detail}; no new endpoint is attached until it is` };
  }
}
