package main

import (
	"strings"
	"testing"
)

func TestPreviousSummaryFeedsTheNextReport(t *testing.T) {
	old := "# wisp benchmarks\n\nRun at 2026-12-01 21:38 UTC, took 11m42s.\n\n## Summary\n\n| | target | measured |\n|---|---|---|\n" +
		"| expiry lag p99 | ≤ 50 ms | **251.0 ms** (p50 160.5) |\n| room creation | ≥ 8,000/s | **1700/s** |\n\n## 1. Latency\n\n| a | b | c |\n"
	when, was := previousSummary(old)
	if when != "2026-12-01 21:38 UTC" || was["expiry lag p99"] != "**251.0 ms** (p50 160.5)" || was["room creation"] != "**1700/s**" || len(was) != 2 {
		t.Fatalf("previous = %q %v", when, was)
	}
	// The new report puts the old figure between the target and the new one,
	// and is read back the same way by the run after it.
	b := &bench{summary: []string{"| expiry lag p99 | ≤ 50 ms | **10.2 ms** |"}}
	report := b.report(nil, 0, "/nonexistent", old)
	if !strings.Contains(report, "| expiry lag p99 | ≤ 50 ms | **251.0 ms** (p50 160.5) | **10.2 ms** |") {
		t.Fatalf("summary row not target | previous | measured:\n%s", report)
	}
	if _, again := previousSummary(report); again["expiry lag p99"] != "**10.2 ms**" {
		t.Fatalf("re-read = %v", again)
	}
}
