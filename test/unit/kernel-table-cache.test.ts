/** Reading `nft monitor` for the table cache: which lines are changes to vxnet's tables, and who made them. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { concernsOwnedTables, generationPid } from '../../src/agent/kernel/table-cache.ts';

// printed by nftables 1.0.6 here for: add table, add set, add element, another table, delete, flush ruleset
const CAPTURED = `add table bridge vxnet
# new generation 2 by process 5285 (nft)
add set bridge vxnet s { type ifname . ether_addr; }
# new generation 3 by process 5286 (nft)
add element bridge vxnet s { "x1" . 02:00:00:00:00:01 }
# new generation 4 by process 5288 (nft)
add table ip other
# new generation 5 by process 5294 (nft)
delete set bridge vxnet s
delete table bridge vxnet
# new generation 6 by process 5295 (nft)
delete table ip other
# new generation 7 by process 5296 (nft)`.split('\n');

describe('nft monitor lines', () => {
  it('tells changes to table ip vxnet and bridge vxnet from everything else', () => {
    assert.deepEqual(
      CAPTURED.map(concernsOwnedTables),
      [true, false, true, false, true, false, false, false, true, true, false, false, false],
    );
    assert.equal(concernsOwnedTables('add rule ip vxnet forward iifname "vxnb42" accept'), true);
    assert.equal(concernsOwnedTables('add rule ip vxnetwork forward accept'), false, 'a table whose name only starts alike');
    assert.equal(concernsOwnedTables('add rule inet vxnet forward accept'), false, 'another family');
  });

  it('reads the pid of a generation line, -1 when it names none, undefined for other lines', () => {
    assert.deepEqual(CAPTURED.map(generationPid).filter((pid) => pid !== undefined), [5285, 5286, 5288, 5294, 5295, 5296]);
    assert.equal(generationPid('# new generation 12'), -1);
    assert.equal(generationPid('add table ip other'), undefined);
  });
});
