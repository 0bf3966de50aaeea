package testkit_test

import (
	"context"
	"testing"

	"wisp/contract"
	"wisp/testkit"
)

// TestRedisClusterAndSlots: a 3-master cluster comes up serving every slot,
// and contract.Slot agrees with the cluster's own CLUSTER KEYSLOT on room
// keys and on every shard of the deadline set.
func TestRedisClusterAndSlots(t *testing.T) {
	c := testkit.StartRedisCluster(t, testkit.ClusterOptions{Masters: 3})
	rdb := c.Client(t)
	ctx := context.Background()
	id := contract.RandomID(contract.RoomIDLen)
	keys := append(contract.RoomKeys(id), "foo", "{}x", contract.RateLimitKey("api|127.0.0.1"))
	for _, k := range contract.DeadlineShardKeys() {
		keys = append(keys, k, contract.EndingKeyOf(k), contract.EpochKeyOf(k))
	}
	for _, k := range keys {
		want, err := rdb.ClusterKeySlot(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got := contract.Slot(k); int64(got) != want {
			t.Errorf("Slot(%q) = %d, CLUSTER KEYSLOT says %d", k, got, want)
		}
	}
	masters := map[string]bool{}
	for _, k := range contract.DeadlineShardKeys() {
		m, err := c.MasterOf(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		masters[m.Addr] = true
	}
	if len(masters) != 3 {
		t.Fatalf("the deadline shards sit on %d of 3 masters", len(masters))
	}
}
