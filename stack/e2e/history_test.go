package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"wisp/contract"
	"wisp/stack/client"
	"wisp/testkit"
)

// TestHistoryLoadsKeepTheGatewaySmall: a room holding about 3 MB of
// history, read whole by 20 loads at once (each following `more`, waiting
// and trying again when told 429, as the UI does), costs the gateway a
// bounded amount of memory — not the history times the loads (before pages
// and in-flight caps, 20 such loads took a gateway from 22 to 137 MB).
func TestHistoryLoadsKeepTheGatewaySmall(t *testing.T) {
	s := startStack(t, 1, nil)
	gw := s.Gateways()[0]
	ctx := context.Background()
	alice := client.New(gw)
	id, err := alice.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Join(ctx, id); err != nil {
		t.Fatal(err)
	}
	// 1,000 messages of 1,000 three-byte characters, written as the
	// messages service stores them (writing them through the API would take
	// the rate limits' time).
	opt, err := redis.ParseURL(s.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	text := strings.Repeat("€", 1000)
	pipe := rdb.Pipeline()
	for seq := 1; seq <= 1000; seq++ {
		rest, _ := json.Marshal(map[string]any{"id": fmt.Sprint("m", seq), "sender": "alice", "text": text,
			"timestamp": time.Now().UnixMilli(), "roomId": id})
		pipe.RPush(ctx, contract.MessagesKey(id), `{"seq":`+strconv.Itoa(seq)+`,"author":"m-x",`+string(rest[1:]))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}

	pid := serviceProc(t, s, "gateway").Pid()
	before := rssKiB(t, pid)
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				if kb := rssKiB(t, pid); kb > peak.Load() {
					peak.Store(kb)
				}
			}
		}
	}()
	var wg sync.WaitGroup
	var refused atomic.Int64
	for range 20 {
		wg.Go(func() {
			var got int
			after := int64(0)
			for {
				page, err := alice.Page(ctx, id, after)
				if se := (*client.StatusError)(nil); errors.As(err, &se) && se.Status == 429 {
					refused.Add(1)
					time.Sleep(50 * time.Millisecond)
					continue
				}
				if err != nil {
					t.Errorf("load: %v", err)
					return
				}
				got += len(page.Messages)
				if !page.More {
					break
				}
				after = page.Messages[len(page.Messages)-1].Seq
			}
			if got != 1000 {
				t.Errorf("a load read %d of 1,000 messages", got)
			}
		})
	}
	wg.Wait()
	close(stop)
	<-sampled
	grew := peak.Load() - before
	t.Logf("20 loads of ~3 MB: gateway RSS %d KiB before, peak %d KiB (+%d KiB); %d answers were 429", before, peak.Load(), grew, refused.Load())
	if grew > 48*1024 {
		t.Fatalf("the gateway grew by %d KiB for 20 history loads; want under 48 MiB", grew)
	}
}

func rssKiB(t *testing.T, pid int) int64 {
	kb, err := testkit.ResidentKiB(pid)
	if err != nil {
		t.Error(err)
	}
	return kb
}
