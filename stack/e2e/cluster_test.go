package e2e

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"wisp/contract"
	"wisp/stack"
	"wisp/stack/client"
	"wisp/testkit"
)

// clusterNodeTimeout is Redis's cluster-node-timeout in this test: a
// master silent that long is failed and its replica promoted.
const clusterNodeTimeout = time.Second

// TestClusterTopology runs wisp as it runs at scale: a 3-node NATS cluster
// (nats-server processes joined by routes), a Redis Cluster of 3 masters
// and 3 replicas, two replicas of each service, the two members of a room
// on different gateways attached to different NATS nodes. A whole
// conversation, a join race, a destroy and expiries (exactly once, over
// rooms on every master); then, mid-conversation, one NATS node and the
// Redis master holding the room die: no acknowledged message is lost,
// expiry stays exactly once (publishers' repeats after their reconnect,
// marked as such, aside), and messages flow again within the cluster's
// failover time.
func TestClusterTopology(t *testing.T) {
	logs := &testkit.SyncBuffer{}
	reps := map[string]int{}
	for _, s := range stack.Services {
		reps[s] = 2
	}
	c, err := stack.StartCluster(context.Background(), stack.ClusterOptions{
		Options: stack.Options{BinDir: binDir, NATSBin: natsBin, Replicas: reps, Logs: logs, Dir: t.TempDir(),
			Env: map[string]string{"ROOM_TTL": "15s"}},
		NodeTimeout: clusterNodeTimeout,
	})
	if err != nil {
		t.Fatalf("start: %v\n%s", err, logs.String())
	}
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Errorf("stop: %v", err)
		}
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	})
	ctx := context.Background()
	gws := c.Gateways()
	if len(gws) != 2 {
		t.Fatalf("%d gateways", len(gws))
	}
	for i := range 2 {
		names, err := c.NATS[i].Clients(ctx)
		if err != nil || !slices.Contains(names, "gateway") {
			t.Fatalf("nats-%d holds %v (%v), want gateway-%d", i, names, err, i)
		}
	}
	rdb := c.Redis.Client(t)
	// The recorder hangs on the NATS node that is not killed: it must not
	// miss an announcement while it reconnects.
	nc, err := nats.Connect(c.NATS[2].URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ends := recordEnds(t, nc, rdb)

	// A conversation across gateways and NATS nodes.
	talk := openRoom(t, ctx, gws[0], gws[1])
	quiet := openRoom(t, ctx, gws[1], gws[0])
	quietDeadline := time.Now().Add(15 * time.Second)
	if _, err := talk.a.Send(ctx, talk.id, "alice", "hello via nats-0"); err != nil {
		t.Fatal(err)
	}
	if _, err := talk.b.Send(ctx, talk.id, "bob", "hello via nats-1"); err != nil {
		t.Fatal(err)
	}
	for _, ws := range []*client.Socket{talk.wsA, talk.wsB} {
		expectMessages(t, ws, "hello via nats-0", "hello via nats-1")
	}
	joinRace(t, ctx, gws)
	if err := talk.a.Destroy(ctx, talk.id); err != nil {
		t.Fatal(err)
	}
	for _, ws := range []*client.Socket{talk.wsA, talk.wsB} {
		expectDestroy(t, ws, contract.ReasonDestroyed, 3*time.Second)
	}

	// Rooms on every master expire, each announced once.
	before := seedExpiring(t, rdb, 48, time.Now().Add(500*time.Millisecond), time.Second)
	ends.waitAll(t, before, 10*time.Second)

	// Mid-conversation, one NATS node and the Redis master holding the room die.
	live := openRoom(t, ctx, gws[0], gws[1])
	readA, readB := readTexts(live.wsA), readTexts(live.wsB)
	sender := startSending(live)
	testkit.Eventually(t, 10*time.Second, func() error { return sender.ackedSince(time.Time{}, 20) })
	master, err := c.Redis.MasterOf(ctx, contract.RoomKey(live.id))
	if err != nil {
		t.Fatal(err)
	}
	during := seedExpiring(t, rdb, 48, time.Now().Add(200*time.Millisecond), 3*time.Second)
	killed := time.Now()
	if err := c.NATS[0].Kill(); err != nil {
		t.Fatal(err)
	}
	master.Stop()

	// Flowing again: a message sent after the kill is acknowledged and
	// reaches both members, through both gateways.
	var recovered time.Duration
	testkit.Eventually(t, 30*time.Second, func() error {
		text, at, ok := sender.firstAckedSince(killed)
		if !ok {
			return errors.New("no send acknowledged since the kill")
		}
		ta, okA := readA.at(text)
		tb, okB := readB.at(text)
		if !okA || !okB {
			return fmt.Errorf("%s acknowledged, not yet on both sockets", text)
		}
		recovered = max(at.Sub(killed), ta.Sub(killed), tb.Sub(killed))
		return nil
	})
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.Redis.WaitHealthy(fctx, 3); err != nil {
		t.Fatal(err)
	}
	failover := time.Since(killed)
	t.Logf("killed nats-0 and redis master %s: messages flowing again after %v (cluster healthy again, 3 masters, after %v; cluster-node-timeout %v)",
		master.Addr, recovered.Round(time.Millisecond), failover.Round(time.Millisecond), clusterNodeTimeout)
	if limit := 10 * clusterNodeTimeout; recovered > limit {
		t.Errorf("recovery took %v, more than %v", recovered, limit)
	}
	testkit.Eventually(t, 10*time.Second, func() error { return sender.ackedSince(killed, 20) })
	acked, failed := sender.stop()

	// No acknowledged message lost: every one is in the room's history.
	stored := map[string]bool{}
	for after := int64(0); ; {
		page, err := live.b.Page(ctx, live.id, after)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Messages {
			stored[m.Text] = true
			after = m.Seq
		}
		if !page.More {
			break
		}
	}
	var lost []string
	for _, text := range acked {
		if !stored[text] {
			lost = append(lost, text)
		}
	}
	if len(lost) > 0 {
		t.Fatalf("%d of %d acknowledged messages lost: %v", len(lost), len(acked), lost)
	}
	// And each reached both members: gateway-0's socket through its catch-up
	// after its NATS node died, gateway-1's (whose node stayed) through the
	// gap fill of events the dead node had not passed on.
	testkit.Eventually(t, 5*time.Second, func() error {
		for _, text := range acked {
			_, okA := readA.at(text)
			_, okB := readB.at(text)
			if !okA || !okB {
				return fmt.Errorf("%s acknowledged and stored, on alice's socket %v, on bob's %v", text, okA, okB)
			}
		}
		return nil
	})
	t.Logf("%d messages acknowledged, all stored, all on both sockets; failed sends: %v", len(acked), failed)

	// Expiry across the failover: still exactly once each, the quiet room too.
	ends.waitAll(t, during, 20*time.Second)
	for _, ws := range []*client.Socket{quiet.wsA, quiet.wsB} {
		expectDestroy(t, ws, contract.ReasonExpired, time.Until(quietDeadline)+10*time.Second)
	}
	if err := live.a.Destroy(ctx, live.id); err != nil {
		t.Fatal(err)
	}
	ends.waitAll(t, []string{live.id}, 5*time.Second)
	time.Sleep(2 * time.Second) // a few sweeps more: a duplicate would show up now
	all := append(append([]string{talk.id, quiet.id, live.id}, before...), during...)
	if dup := ends.duplicates(all); len(dup) > 0 {
		t.Fatalf("announced more than once: %v", dup)
	}
	ends.mu.Lock()
	t.Logf("%d announcements repeated after a publisher's NATS reconnect", ends.repeats)
	ends.mu.Unlock()
}

// joinRace: visitors of one room racing through both gateways; exactly two
// get in.
func joinRace(t *testing.T, ctx context.Context, gws []string) {
	t.Helper()
	id, err := client.New(gws[0]).Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		joined int
	)
	for i := range 10 {
		wg.Go(func() {
			err := client.New(gws[i%2]).Join(ctx, id)
			var se *client.StatusError
			switch {
			case err == nil:
				mu.Lock()
				joined++
				mu.Unlock()
			case errors.As(err, &se) && se.Location == "/?error=room-full":
			default:
				t.Errorf("join: %v", err)
			}
		})
	}
	wg.Wait()
	if joined != 2 {
		t.Fatalf("%d of 10 racing visitors joined, want 2", joined)
	}
}

// seedExpiring writes n rooms as the rooms service leaves them, deadlines
// spread over [from, from+over): rooms, and deadline shards, on every master.
func seedExpiring(t *testing.T, rdb redis.UniversalClient, n int, from time.Time, over time.Duration) []string {
	t.Helper()
	rooms := make([]testkit.Room, n)
	for i := range rooms {
		rooms[i] = testkit.Room{Deadline: from.Add(over * time.Duration(i) / time.Duration(n)), Tokens: []string{"tok"}}
	}
	return testkit.SeedRooms(t, rdb, rooms...)
}

// endRecorder counts the chat.destroy announcements of each room; repeats
// after a publisher's NATS reconnect (contract.HeaderRepeat) apart.
type endRecorder struct {
	rdb     redis.UniversalClient // to say where a room not announced is
	mu      sync.Mutex
	n       map[string]int
	repeats int
}

func recordEnds(t *testing.T, nc *nats.Conn, rdb redis.UniversalClient) *endRecorder {
	t.Helper()
	r := &endRecorder{rdb: rdb, n: map[string]int{}}
	sub, err := nc.Subscribe(contract.AllDestroys, func(m *nats.Msg) {
		id := strings.TrimPrefix(m.Subject, contract.EventDestroy+".")
		r.mu.Lock()
		if m.Header.Get(contract.HeaderRepeat) != "" {
			r.repeats++
			// A repeat may be the first copy to arrive, the original
			// having died with the killed node.
			if r.n[id] == 0 {
				r.n[id] = 1
			}
		} else {
			r.n[id]++
		}
		r.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *endRecorder) waitAll(t *testing.T, ids []string, within time.Duration) {
	t.Helper()
	testkit.Eventually(t, within, func() error {
		r.mu.Lock()
		var missing []string
		for _, id := range ids {
			if r.n[id] == 0 {
				missing = append(missing, id)
			}
		}
		r.mu.Unlock()
		if len(missing) > 0 {
			return fmt.Errorf("%d of %d rooms not announced; the first %s", len(missing), len(ids), r.where(missing[0]))
		}
		return nil
	})
}

// where says where in Redis a room not announced is: still due, claimed
// and leased, or gone from both sets.
func (r *endRecorder) where(id string) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	shard := contract.DeadlinesKeyOf(id)
	now := time.Now().UnixMilli()
	if due, err := r.rdb.ZScore(ctx, shard, id).Result(); err == nil {
		return fmt.Sprintf("%s is still in %s, due %d ms ago", id, shard, now-int64(due))
	}
	if lease, err := r.rdb.ZScore(ctx, contract.EndingKeyOf(shard), contract.EndingMember(contract.ReasonExpired, id)).Result(); err == nil {
		return fmt.Sprintf("%s is claimed, its lease ends in %d ms", id, int64(lease)-now)
	}
	return id + " is in neither the deadline set nor the ending set: claimed and announced, or lost"
}

func (r *endRecorder) duplicates(ids []string) map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for _, id := range ids {
		if r.n[id] > 1 {
			out[id] = r.n[id]
		}
	}
	return out
}

// texts is what one socket received: each message text and when.
type texts struct {
	mu   sync.Mutex
	when map[string]time.Time
}

// readTexts reads the socket's message frames until it closes.
func readTexts(ws *client.Socket) *texts {
	r := &texts{when: map[string]time.Time{}}
	go func() {
		for {
			f, err := ws.Next(time.Minute)
			if err != nil {
				return
			}
			if m, err := f.Message(); err == nil {
				r.mu.Lock()
				if _, seen := r.when[m.Text]; !seen {
					r.when[m.Text] = time.Now()
				}
				r.mu.Unlock()
			}
		}
	}()
	return r
}

func (r *texts) at(text string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.when[text]
	return at, ok
}

// sending is a member sending a message every 50 ms, each with a short
// timeout, recording which were acknowledged and when.
type sending struct {
	mu     sync.Mutex
	acked  []ack
	failed map[string]int // error text -> count
	done   chan struct{}
	wg     sync.WaitGroup
}

type ack struct {
	text       string
	sent, done time.Time
}

func startSending(p *pair) *sending {
	s := &sending{done: make(chan struct{}), failed: map[string]int{}}
	s.wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-s.done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			text := fmt.Sprintf("m-%04d", i)
			sent := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_, err := p.a.Send(ctx, p.id, "alice", text)
			cancel()
			s.mu.Lock()
			if err == nil {
				s.acked = append(s.acked, ack{text, sent, time.Now()})
			} else {
				s.failed[err.Error()]++
			}
			s.mu.Unlock()
		}
	})
	return s
}

// ackedSince is nil once n messages sent after t were acknowledged.
func (s *sending) ackedSince(t time.Time, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	got := 0
	for _, a := range s.acked {
		if a.sent.After(t) {
			got++
		}
	}
	if got < n {
		return fmt.Errorf("%d of %d sends acknowledged", got, n)
	}
	return nil
}

// firstAckedSince is the first message sent after t that was acknowledged.
func (s *sending) firstAckedSince(t time.Time) (string, time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.acked {
		if a.sent.After(t) {
			return a.text, a.done, true
		}
	}
	return "", time.Time{}, false
}

// stop ends the sender and returns the texts acknowledged and the
// failures, by error.
func (s *sending) stop() ([]string, map[string]int) {
	close(s.done)
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.acked))
	for i, a := range s.acked {
		out[i] = a.text
	}
	return out, s.failed
}
