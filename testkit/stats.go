package testkit

import "cmp"

// Percentile returns the nearest-rank q-quantile (0 ≤ q ≤ 1) of sorted, an
// ascending sample: the value at index ⌊q·n⌋, the last one at most, so p50
// of 1..1000 is 501 and p99 is 991. An empty sample gives the zero value.
// Tests and benchmarks that report latencies use this one definition.
func Percentile[T cmp.Ordered](sorted []T, q float64) T {
	if len(sorted) == 0 {
		var zero T
		return zero
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}
