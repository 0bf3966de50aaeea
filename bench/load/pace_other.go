//go:build !linux

package load

import "time"

// pacer elsewhere than Linux is Go's own timer: to the millisecond when
// the process is otherwise idle (see pace_linux.go).
type pacer struct{}

func newPacer(time.Duration) *pacer { return &pacer{} }

func (*pacer) sleep(d time.Duration) { time.Sleep(d) }

func (*pacer) close() {}
