package load

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// pacer sleeps the schedule's goroutine until the next message is due.
//
// Go's timers wake an otherwise idle process only to the millisecond (its
// netpoller's epoll_wait counts in milliseconds): with time.Sleep, a
// message at 1,000/s went out 0.55 ms late at the median and 1.0 ms at
// p90, and latency counted from the due time took all of that as wisp's.
// So at 1,000/s and below the schedule keeps a thread of its own and
// sleeps in clock_nanosleep, which wakes within tens of microseconds
// (sender lag p50 0.09 ms).
//
// Faster schedules keep Go's timers. There the process is seldom idle, and
// a message goes out in the same millisecond's batch it did before. A
// thread of its own cost the generator 0.07 cores more at 6,000/s, as
// much again with one wake per message, and the sweep's sustained rate
// fell from 7,000/s to 5,000/s in the same hour. (A timerfd read through
// Go's poller is as precise when idle, but under load the poller is looked
// at late: messages at 8,000/s went out 1.2 ms late at the median.)
type pacer struct{ precise bool }

// preciseFrom: a schedule whose messages are at least this far apart is
// paced precisely; Go's timers serve faster ones.
const preciseFrom = time.Millisecond

// newPacer returns the pacer for messages interval apart, on the calling
// goroutine's thread; close undoes it there.
func newPacer(interval time.Duration) *pacer {
	if interval < preciseFrom {
		return &pacer{}
	}
	runtime.LockOSThread()
	// The thread's timer slack: the kernel may otherwise add up to 50 µs
	// to each sleep, to wake several timers together. Where it refuses,
	// sleeps are that much less precise, and still never early.
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
	return &pacer{precise: true}
}

// sleep waits d (> 0).
func (p *pacer) sleep(d time.Duration) {
	if !p.precise {
		time.Sleep(d)
		return
	}
	ts := unix.NsecToTimespec(int64(d))
	// Go's runtime signals its threads (preemption), which cuts a sleep
	// short: then sleep the rest.
	for {
		switch err := unix.ClockNanosleep(unix.CLOCK_MONOTONIC, 0, &ts, &ts); err {
		case nil:
			return
		case unix.EINTR:
		default: // cannot happen with a valid time; were it to, late beats early
			time.Sleep(time.Duration(ts.Nano()))
			return
		}
	}
}

func (p *pacer) close() {
	if p.precise {
		_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 0, 0, 0, 0) // the thread's default again
		runtime.UnlockOSThread()
	}
}
