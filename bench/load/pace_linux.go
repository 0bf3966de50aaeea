package load

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// pacer sleeps the schedule's goroutine until the next message is due.
// Go's timers wake an otherwise idle process only to the millisecond (its
// netpoller's epoll_wait counts in milliseconds): with time.Sleep, a
// message went out 0.55 ms late at the median and 1.0 ms at p90 on this
// machine, and latency counted from the due time took all of that as
// wisp's. So the schedule keeps a thread of its own and sleeps in
// clock_nanosleep, which wakes it within tens of microseconds.
type pacer struct{}

func newPacer() pacer {
	runtime.LockOSThread()
	// The thread's timer slack: the kernel may otherwise add up to 50 µs
	// to each sleep, to wake several timers together.
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
	return pacer{}
}

func (pacer) sleep(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	// Go's runtime signals its threads (preemption), which cuts a sleep
	// short: sleep the rest.
	for unix.ClockNanosleep(unix.CLOCK_MONOTONIC, 0, &ts, &ts) == unix.EINTR {
	}
}

func (pacer) close() {
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 0, 0, 0, 0) // the thread's default again
	runtime.UnlockOSThread()
}
