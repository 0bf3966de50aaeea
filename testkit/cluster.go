package testkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisCluster is a Redis Cluster of redis-server child processes on
// loopback ports: masters, each with its replicas, every node with
// keyspace notifications for expired keys on and persistence off.
type RedisCluster struct {
	Nodes []*Redis
	// URL is the cluster in go-redis's cluster form, every node a seed
	// (redis://host:port?addr=host:port&...): what REDIS_URL takes.
	URL string
}

// ClusterOptions shape a RedisCluster.
type ClusterOptions struct {
	Masters           int           // 3 when 0
	ReplicasPerMaster int           // 0 for none
	NodeTimeout       time.Duration // cluster-node-timeout; 1 s when 0 (Redis's default is 15 s)
}

// StartRedisCluster starts a Redis Cluster for the test, stopped with it.
func StartRedisCluster(tb testing.TB, o ClusterOptions) *RedisCluster {
	tb.Helper()
	c, err := LaunchRedisCluster(tb.TempDir(), o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Stop)
	return c
}

// Client returns a cluster client on c's URL, closed with the test.
func (c *RedisCluster) Client(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	opt, err := redis.ParseClusterURL(c.URL)
	if err != nil {
		tb.Fatal(err)
	}
	rdb := redis.NewClusterClient(opt)
	tb.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// LaunchRedisCluster starts the nodes with their files under dir, joins
// them with redis-cli --cluster create and waits until every node reports
// the cluster ok and every replica is in sync. The caller stops it.
func LaunchRedisCluster(dir string, o ClusterOptions) (*RedisCluster, error) {
	if o.Masters == 0 {
		o.Masters = 3
	}
	if o.NodeTimeout == 0 {
		o.NodeTimeout = time.Second
	}
	if _, err := exec.LookPath("redis-cli"); err != nil {
		return nil, fmt.Errorf("redis-cli not found in PATH (Debian: apt-get install -y redis-tools): %w", err)
	}
	c := &RedisCluster{}
	n := o.Masters * (1 + o.ReplicasPerMaster)
	for i := range n {
		nodeDir := filepath.Join(dir, "node"+strconv.Itoa(i))
		if err := os.MkdirAll(nodeDir, 0o755); err != nil {
			return nil, err
		}
		r, err := LaunchRedis(nodeDir,
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(nodeDir, "nodes.conf"),
			"--cluster-node-timeout", strconv.FormatInt(o.NodeTimeout.Milliseconds(), 10),
			// The masters left keep serving their slots while a failed one's
			// replica takes over, instead of the whole cluster refusing.
			"--cluster-require-full-coverage", "no",
			// A replica of a master that just failed is always eligible.
			"--cluster-replica-validity-factor", "0",
		)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Nodes = append(c.Nodes, r)
	}
	args := []string{"--cluster", "create"}
	for _, r := range c.Nodes {
		args = append(args, r.Addr)
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(o.ReplicasPerMaster), "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		c.Stop()
		return nil, fmt.Errorf("redis-cli --cluster create: %w\n%s", err, out)
	}
	seeds := make([]string, 0, len(c.Nodes)-1)
	for _, r := range c.Nodes[1:] {
		seeds = append(seeds, "addr="+r.Addr)
	}
	c.URL = "redis://" + c.Nodes[0].Addr + "?" + strings.Join(seeds, "&")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.WaitHealthy(ctx, o.Masters); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// WaitHealthy waits until every live node says cluster_state:ok, masters
// masters serve all 16384 slots, and every replica's link to its master is
// up.
func (c *RedisCluster) WaitHealthy(ctx context.Context, masters int) error {
	var last error
	for {
		if last = c.healthy(ctx, masters); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis cluster not healthy: %w", last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *RedisCluster) healthy(ctx context.Context, masters int) error {
	for _, r := range c.Live() {
		cl := redis.NewClient(&redis.Options{Addr: r.Addr})
		info, err := cl.ClusterInfo(ctx).Result()
		if err == nil && !strings.Contains(info, "cluster_state:ok") {
			err = fmt.Errorf("%s: cluster state not ok", r.Addr)
		}
		if err == nil {
			var repl string
			if repl, err = cl.Info(ctx, "replication").Result(); err == nil &&
				strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
				err = fmt.Errorf("%s: replica not in sync", r.Addr)
			}
		}
		if err == nil {
			var shards []redis.ClusterShard
			if shards, err = cl.ClusterShards(ctx).Result(); err == nil {
				if got := servingMasters(shards); got != masters {
					err = fmt.Errorf("%s sees %d masters serving slots, want %d", r.Addr, got, masters)
				}
			}
		}
		_ = cl.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func servingMasters(shards []redis.ClusterShard) int {
	n := 0
	for _, s := range shards {
		if len(s.Slots) == 0 {
			continue
		}
		for _, node := range s.Nodes {
			if node.Role == "master" && node.Health == "online" {
				n++
				break
			}
		}
	}
	return n
}

// Live returns the nodes still running.
func (c *RedisCluster) Live() []*Redis {
	var out []*Redis
	for _, r := range c.Nodes {
		if r.cmd != nil {
			out = append(out, r)
		}
	}
	return out
}

// MasterOf returns the node now serving key's slot as master.
func (c *RedisCluster) MasterOf(ctx context.Context, key string) (*Redis, error) {
	for _, r := range c.Live() {
		cl := redis.NewClient(&redis.Options{Addr: r.Addr})
		slot, err := cl.ClusterKeySlot(ctx, key).Result()
		var shards []redis.ClusterShard
		if err == nil {
			shards, err = cl.ClusterShards(ctx).Result()
		}
		_ = cl.Close()
		if err != nil {
			continue
		}
		for _, s := range shards {
			for _, rg := range s.Slots {
				if slot < int64(rg.Start) || slot > int64(rg.End) {
					continue
				}
				for _, node := range s.Nodes {
					if node.Role == "master" {
						return c.byPort(int(node.Port))
					}
				}
			}
		}
	}
	return nil, fmt.Errorf("no master known for %q", key)
}

func (c *RedisCluster) byPort(port int) (*Redis, error) {
	for _, r := range c.Nodes {
		if r.port == port {
			return r, nil
		}
	}
	return nil, errors.New("master is not a node of this cluster")
}

// Stop kills every node; it is safe to call twice.
func (c *RedisCluster) Stop() {
	for _, r := range c.Nodes {
		r.Stop()
	}
}
