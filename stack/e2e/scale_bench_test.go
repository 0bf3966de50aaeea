package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"wisp/stack"
	"wisp/stack/client"
	"wisp/testkit"
)

// BenchmarkScaleOut: sustained sends through 1 gateway + 1 messages
// replica against 2 + 2 (rooms and expiry one each, rate limits off), on
// this machine's cores, the load generator included. 100 rooms, their two
// members on different gateways where there are two, 32 senders each
// sending as fast as its replies come for 10 s; every socket is read.
// Figures are reported, never asserted:
//
//	go test -run '^$' -bench ScaleOut -benchtime 1x ./e2e
func BenchmarkScaleOut(b *testing.B) {
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("gateways=%d,messages=%d", n, n), func(b *testing.B) {
			for range b.N {
				scaleOut(b, n)
			}
		})
	}
}

func scaleOut(b *testing.B, n int) {
	const (
		rooms   = 100
		senders = 32
		run     = 10 * time.Second
	)
	logs := &testkit.SyncBuffer{}
	s, err := stack.Start(context.Background(), stack.Options{
		BinDir: binDir, NATSBin: natsBin, Logs: logs, Dir: b.TempDir(),
		Replicas: map[string]int{"gateway": n, "messages": n},
		Env:      map[string]string{"RATE_LIMITS": "off", "ROOM_TTL": "10m"},
	})
	if err != nil {
		b.Fatalf("start: %v\n%s", err, logs.String())
	}
	defer func() { _ = s.Stop(context.Background()) }()
	ctx := context.Background()
	gws := s.Gateways()
	type room struct {
		id   string
		a, b *client.Person
	}
	var frames atomic.Int64
	all := make([]room, rooms)
	for i := range all {
		r := room{a: client.New(gws[i%n]), b: client.New(gws[(i+1)%n])}
		if r.id, err = r.a.Create(ctx); err != nil {
			b.Fatal(err)
		}
		for _, p := range []*client.Person{r.a, r.b} {
			if err := p.Join(ctx, r.id); err != nil {
				b.Fatal(err)
			}
			ws, err := p.Dial(ctx, r.id)
			if err != nil {
				b.Fatal(err)
			}
			defer ws.Close()
			go func() {
				for {
					if _, err := ws.Next(time.Minute); err != nil {
						return
					}
					frames.Add(1)
				}
			}()
		}
		all[i] = r
	}

	var (
		mu     sync.Mutex
		lat    []time.Duration
		failed atomic.Int64
		wg     sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(run)
	for w := range senders {
		wg.Go(func() {
			var mine []time.Duration
			for i := w; time.Now().Before(end); i += senders {
				r := all[i%rooms]
				t0 := time.Now()
				if _, err := r.a.Send(ctx, r.id, "a", "load"); err != nil {
					failed.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	took := time.Since(start)
	time.Sleep(500 * time.Millisecond) // the last frames in flight
	slices.Sort(lat)
	rate := float64(len(lat)) / took.Seconds()
	b.ReportMetric(rate, "msgs/s")
	b.ReportMetric(float64(frames.Load())/took.Seconds(), "frames/s")
	b.ReportMetric(ms(testkit.Percentile(lat, .50)), "p50-ms")
	b.ReportMetric(ms(testkit.Percentile(lat, .99)), "p99-ms")
	b.ReportMetric(float64(failed.Load()), "failed")
	b.Logf("%d gateway(s) + %d messages replica(s): %.0f sends/s acknowledged, %.0f frames/s delivered, p50 %v p99 %v, %d failed",
		n, n, rate, float64(frames.Load())/took.Seconds(), testkit.Percentile(lat, .50).Round(100*time.Microsecond),
		testkit.Percentile(lat, .99).Round(100*time.Microsecond), failed.Load())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
