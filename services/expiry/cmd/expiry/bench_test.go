package main

import (
	"sort"
	"testing"
	"time"

	"wisp/contract"
	"wisp/services/expiry/internal/expirytest"
	"wisp/testkit"
)

// The targets, measured: run with
//
//	go test -run '^$' -bench . -benchtime 1x ./cmd/expiry
//
// Figures are reported, never asserted: they depend on the machine.

const (
	benchRooms    = 10000
	benchReplicas = 3
)

// BenchmarkExpiryLag: 10,000 live rooms whose deadlines fall over 3 s,
// three replicas; lag is deadline → chat.destroy received on NATS.
func BenchmarkExpiryLag(b *testing.B) {
	for range b.N {
		in := startInfra(b)
		var replicas []*testkit.Running
		for range benchReplicas {
			replicas = append(replicas, in.start(b))
		}
		deadlines := expirytest.Spread(benchRooms, time.Now().Add(2*time.Second), 3*time.Second)
		ids := expirytest.MustSeedRooms(b, in.rdb, deadlines...)
		in.rec.WaitAll(b, ids, time.Minute)
		in.fence(b)
		reportLag(b, in.rec, ids, deadlines)
		var viaEvent, viaSweep float64
		for _, s := range replicas {
			viaEvent += metric(b, s, `wisp_expiry_rooms_total{path="event"}`)
			viaSweep += metric(b, s, `wisp_expiry_rooms_total{path="sweep"}`)
		}
		b.ReportMetric(viaSweep, "via-sweep")
		b.ReportMetric(viaEvent, "via-event")
	}
}

// BenchmarkCatchUp: expiry was down for a minute while 10,000 rooms passed
// their deadline (Redis expired their keys; the events went nowhere), next
// to 10,000 rooms still live. Three replicas start; catch-up is from the
// first start to the last chat.destroy received.
func BenchmarkCatchUp(b *testing.B) {
	for range b.N {
		in := startInfra(b)
		now := time.Now()
		deadlines := expirytest.Spread(benchRooms, now.Add(-time.Minute), time.Minute)
		ids := expirytest.MustSeedRooms(b, in.rdb, deadlines...)
		expirytest.MustSeedRooms(b, in.rdb, expirytest.Spread(benchRooms, now.Add(time.Hour), time.Hour)...)
		started := time.Now()
		for range benchReplicas {
			in.start(b)
		}
		in.rec.WaitAll(b, ids, time.Minute)
		in.fence(b)
		var last time.Time
		since := make([]time.Duration, 0, len(ids))
		for _, id := range ids {
			at, _ := in.rec.ReceivedAt(id)
			since = append(since, at.Sub(started))
			if at.After(last) {
				last = at
			}
		}
		sort.Slice(since, func(i, j int) bool { return since[i] < since[j] })
		b.ReportMetric(ms(since[len(since)*99/100]), "p99-after-start-ms")
		b.ReportMetric(ms(last.Sub(started)), "all-announced-ms")
		b.ReportMetric(float64(in.rec.Duplicates()), "duplicates")
		b.ReportMetric(float64(len(in.rec.Missing(ids))), "missed")
		if n := in.rdb.ZCard(b.Context(), contract.DeadlinesKey).Val(); n != benchRooms {
			b.Logf("deadline set holds %d rooms, want the %d live ones", n, benchRooms)
		}
	}
}

func reportLag(b *testing.B, rec *expirytest.Recorder, ids []string, deadlines []time.Time) {
	st := lagStatsOf(rec, ids, deadlines)
	b.ReportMetric(ms(st.p50), "p50-ms")
	b.ReportMetric(ms(st.p99), "p99-ms")
	b.ReportMetric(ms(st.max), "max-ms")
	b.ReportMetric(float64(rec.Duplicates()), "duplicates")
	b.ReportMetric(float64(st.missed), "missed")
	b.Logf("%d rooms, %d replicas: %s", len(ids), benchReplicas, lagFigures(rec, ids, deadlines))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
