package main

import (
	"fmt"
	"slices"
	"testing"
	"time"

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

// BenchmarkExpiryLag: 10,000 and 100,000 live rooms whose deadlines fall
// at 3,333 a second (over 3 s and 30 s), three replicas; lag is deadline →
// chat.destroy received on NATS.
func BenchmarkExpiryLag(b *testing.B) {
	for _, rooms := range []int{benchRooms, 10 * benchRooms} {
		b.Run(fmt.Sprintf("rooms=%d", rooms), func(b *testing.B) {
			for range b.N {
				benchExpiryLag(b, rooms)
			}
		})
	}
}

func benchExpiryLag(b *testing.B, rooms int) {
	in := startInfra(b)
	var replicas []*testkit.Running
	for range benchReplicas {
		replicas = append(replicas, in.start(b))
	}
	// The first deadline far enough out that none falls before the last room
	// is written.
	lead := 2*time.Second + time.Duration(rooms/20)*time.Millisecond
	deadlines := expirytest.Spread(rooms, time.Now().Add(lead), time.Duration(rooms)*time.Second/3333)
	ids := expirytest.MustSeedRooms(b, in.rdb, deadlines...)
	if early := time.Until(deadlines[0]); early < 0 {
		b.Fatalf("seeding ran %v past the first deadline", -early)
	}
	in.rec.WaitAll(b, ids, 2*time.Minute)
	in.fence(b)
	reportLag(b, in.rec, ids, deadlines)
	var viaSweep, viaEvent float64
	for _, s := range replicas {
		viaSweep += metric(b, s, `wisp_expiry_rooms_total{path="sweep"}`)
		viaEvent += metric(b, s, `wisp_expiry_rooms_total{path="event"}`)
	}
	b.ReportMetric(viaSweep, "via-sweep")
	b.ReportMetric(viaEvent, "via-event")
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
		slices.Sort(since)
		b.ReportMetric(ms(testkit.Percentile(since, .99)), "p99-after-start-ms")
		b.ReportMetric(ms(last.Sub(started)), "all-announced-ms")
		b.ReportMetric(float64(in.rec.Duplicates()), "duplicates")
		b.ReportMetric(float64(len(in.rec.Missing(ids))), "missed")
		if n := expirytest.DeadlineEntries(b, in.rdb); n != benchRooms {
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

// BenchmarkExpiryLagCluster: 100,000 live rooms whose deadlines fall over
// 30 s, on a Redis Cluster of 3 masters (the rooms and the 16 deadline
// shards spread over all three), three replicas; lag is deadline →
// chat.destroy received on NATS. Run it alone:
//
//	go test -run '^$' -bench ExpiryLagCluster -benchtime 1x -timeout 15m ./cmd/expiry
func BenchmarkExpiryLagCluster(b *testing.B) {
	const rooms = 100000
	for range b.N {
		cluster := testkit.StartRedisCluster(b, testkit.ClusterOptions{Masters: 3})
		rdb := cluster.Client(b)
		ns := testkit.StartNATS(b)
		rec := expirytest.Record(b, testkit.Connect(b, ns))
		var replicas []*testkit.Running
		for range benchReplicas {
			replicas = append(replicas, testkit.StartService(b, run, map[string]string{"REDIS_URL": cluster.URL, "NATS_URL": ns.ClientURL()}))
		}
		// Seeding 100,000 rooms takes a while: the first deadline is far
		// enough out that none falls before the last room is written.
		deadlines := expirytest.Spread(rooms, time.Now().Add(25*time.Second), 30*time.Second)
		ids := expirytest.MustSeedRooms(b, rdb, deadlines...)
		if early := time.Until(deadlines[0]); early < 0 {
			b.Fatalf("seeding ran %v past the first deadline", -early)
		}
		rec.WaitAll(b, ids, 2*time.Minute)
		id := expirytest.MustSeedRoom(b, rdb, time.Now().Add(500*time.Millisecond)) // a fence, as in.fence
		rec.WaitAll(b, []string{id}, 10*time.Second)
		reportLag(b, rec, ids, deadlines)
		var sweeps, events float64
		for _, s := range replicas {
			sweeps += metric(b, s, `wisp_expiry_rooms_total{path="sweep"}`)
			events += metric(b, s, `wisp_expiry_rooms_total{path="event"}`)
		}
		b.Logf("on a Redis Cluster of 3 masters; announced via the deadline set: %.0f, via events: %.0f", sweeps, events)
	}
}
