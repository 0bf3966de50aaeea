package stack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"wisp/testkit"
)

// ClusterOptions say what a Cluster runs: the system's Options (their
// RedisURL and NATSURL are set by StartCluster) and the two clusters.
type ClusterOptions struct {
	Options
	NATSNodes         int // nats-server processes joined by routes; 3 when 0
	RedisMasters      int // 3 when 0
	ReplicasPerMaster int // 1 when 0; -1 for none
	// NodeTimeout is Redis's cluster-node-timeout: how long a silent master
	// has before its replica takes over. 1 s when 0.
	NodeTimeout time.Duration
}

// Cluster is a System on a NATS cluster and a Redis Cluster, all child
// processes on loopback ports. Gateway i is attached to NATS node i (mod
// the nodes) alone and finds the others through the cluster's gossip; every
// other service gets the whole list in NATS_URL.
type Cluster struct {
	*System
	NATS  []*NATSNode
	Redis *testkit.RedisCluster
}

// NATSNode is one nats-server process of a NATS cluster.
type NATSNode struct {
	Name       string
	URL        string // client URL
	MonitorURL string // HTTP monitoring (/varz, /connz, /routez)
	cmd        *exec.Cmd
	exited     chan struct{}
}

// StartCluster starts the NATS cluster, the Redis Cluster and the system on
// them, and waits until every service is ready.
func StartCluster(ctx context.Context, o ClusterOptions) (*Cluster, error) {
	if o.NATSBin == "" {
		return nil, errors.New("a NATS cluster needs Options.NATSBin (BuildNATS)")
	}
	if o.NATSNodes == 0 {
		o.NATSNodes = 3
	}
	switch o.ReplicasPerMaster {
	case 0:
		o.ReplicasPerMaster = 1
	case -1:
		o.ReplicasPerMaster = 0
	}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "wisp-cluster-")
		if err != nil {
			return nil, err
		}
		dir = d
	}
	c := &Cluster{}
	rc, err := testkit.LaunchRedisCluster(dir, testkit.ClusterOptions{
		Masters: o.RedisMasters, ReplicasPerMaster: o.ReplicasPerMaster, NodeTimeout: o.NodeTimeout})
	if err != nil {
		return nil, err
	}
	c.Redis = rc
	if err := c.startNATS(ctx, o.NATSBin, o.NATSNodes, o.Logs); err != nil {
		c.stopInfra()
		return nil, err
	}
	urls := make([]string, len(c.NATS))
	for i, n := range c.NATS {
		urls[i] = n.URL
	}
	opts := o.Options
	opts.RedisURL, opts.NATSURL = rc.URL, strings.Join(urls, ",")
	perProc := opts.EnvFor
	opts.EnvFor = func(service string, index int) map[string]string {
		env := map[string]string{}
		if perProc != nil {
			env = perProc(service, index)
		}
		if service == "gateway" {
			env["NATS_URL"] = c.NATS[index%len(c.NATS)].URL
		}
		return env
	}
	sys, err := Start(ctx, opts)
	if err != nil {
		c.stopInfra()
		return nil, err
	}
	c.System = sys
	return c, nil
}

func (c *Cluster) startNATS(ctx context.Context, bin string, n int, logs interface{ Write([]byte) (int, error) }) error {
	type ports struct{ client, route, monitor int }
	all := make([]ports, n)
	for i := range all {
		for _, p := range []*int{&all[i].client, &all[i].route, &all[i].monitor} {
			port, err := testkit.FreePort()
			if err != nil {
				return err
			}
			*p = port
		}
	}
	for i, p := range all {
		var routes []string
		for j, q := range all {
			if j != i {
				routes = append(routes, "nats://127.0.0.1:"+strconv.Itoa(q.route))
			}
		}
		node := &NATSNode{Name: "nats-" + strconv.Itoa(i),
			URL:        "nats://127.0.0.1:" + strconv.Itoa(p.client),
			MonitorURL: "http://127.0.0.1:" + strconv.Itoa(p.monitor), exited: make(chan struct{})}
		node.cmd = exec.Command(bin, "-n", node.Name, "-a", "127.0.0.1", "-p", strconv.Itoa(p.client),
			"-m", strconv.Itoa(p.monitor), "--cluster_name", "wisp",
			"--cluster", "nats://127.0.0.1:"+strconv.Itoa(p.route), "--routes", strings.Join(routes, ","))
		// Go's default here, as a deployment's NATS cluster (not ours to size).
		node.cmd.SysProcAttr = testkit.ChildProcAttr()
		if logs != nil {
			node.cmd.Stdout = prefixWriter(logs, node.Name+" | ")
			node.cmd.Stderr = node.cmd.Stdout
		}
		if err := node.cmd.Start(); err != nil {
			return fmt.Errorf("start %s: %w", node.Name, err)
		}
		go func() { _ = node.cmd.Wait(); close(node.exited) }()
		c.NATS = append(c.NATS, node)
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return c.waitSettled(ctx)
}

// routesSettle is how long a NATS cluster's routes must stay as they are
// before it is used: longer than nats-server's 1 s wait before it dials a
// route again. Nodes that dial each other at once each close a duplicate,
// sometimes both ends' (then both dial again a second later), and a
// subscription's interest sent over a closed route is gone from the other
// side: services started on a cluster still forming missed events.
const routesSettle = 1500 * time.Millisecond

// waitSettled waits until every node has routes to all the others and no
// route of any node changed for routesSettle.
func (c *Cluster) waitSettled(ctx context.Context) error {
	var last string
	var since time.Time
	for {
		now, err := c.routeIDs(ctx)
		switch {
		case err != nil:
			last = ""
		case now != last:
			last, since = now, time.Now()
		case time.Since(since) >= routesSettle:
			return nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("routes still changing: %s", now)
			}
			return fmt.Errorf("nats cluster not settled: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// routeIDs lists every node's routes (remote name and route id), or fails
// while a node lacks a route to another.
func (c *Cluster) routeIDs(ctx context.Context) (string, error) {
	var b strings.Builder
	for _, node := range c.NATS {
		var r struct {
			Routes []struct {
				Rid        uint64 `json:"rid"`
				RemoteName string `json:"remote_name"`
			} `json:"routes"`
		}
		if err := node.monitor(ctx, "/routez", &r); err != nil {
			return "", fmt.Errorf("%s: %w", node.Name, err)
		}
		remotes := map[string]bool{}
		ids := make([]string, 0, len(r.Routes))
		for _, rt := range r.Routes {
			remotes[rt.RemoteName] = true
			ids = append(ids, rt.RemoteName+"/"+strconv.FormatUint(rt.Rid, 10))
		}
		slices.Sort(ids) // the monitor lists them in no fixed order
		fmt.Fprintf(&b, "%s: %s; ", node.Name, strings.Join(ids, " "))
		if len(remotes) < len(c.NATS)-1 {
			return "", fmt.Errorf("%s: routes to %d of %d nodes", node.Name, len(remotes), len(c.NATS)-1)
		}
	}
	return b.String(), nil
}

func (n *NATSNode) monitor(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.MonitorURL+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// Clients returns the names of the client connections the node holds now
// (each service names its connection after itself).
func (n *NATSNode) Clients(ctx context.Context) ([]string, error) {
	var r struct {
		Connections []struct {
			Name string `json:"name"`
		} `json:"connections"`
	}
	if err := n.monitor(ctx, "/connz?limit=1024", &r); err != nil {
		return nil, err
	}
	out := make([]string, len(r.Connections))
	for i, c := range r.Connections {
		out[i] = c.Name
	}
	return out, nil
}

// Kill ends the node with SIGKILL and waits for it to be gone.
func (n *NATSNode) Kill() error {
	select {
	case <-n.exited:
		return nil
	default:
	}
	if err := n.cmd.Process.Kill(); err != nil {
		return err
	}
	<-n.exited
	return nil
}

// ConnectNATS opens a client connection to the NATS cluster (every live
// node a seed).
func (c *Cluster) ConnectNATS(name string) (*nats.Conn, error) {
	var urls []string
	for _, n := range c.NATS {
		urls = append(urls, n.URL)
	}
	return nats.Connect(strings.Join(urls, ","), nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
}

// Stop stops the system, then the NATS nodes and the Redis Cluster.
func (c *Cluster) Stop(ctx context.Context) error {
	err := c.System.Stop(ctx)
	c.stopInfra()
	return err
}

func (c *Cluster) stopInfra() {
	for _, n := range c.NATS {
		_ = n.Kill()
	}
	if c.Redis != nil {
		c.Redis.Stop()
	}
}
