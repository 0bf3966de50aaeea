package load

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// The schedule's sleeps never end early, even when a signal cuts the
// system call short (Go's runtime signals its threads to preempt them): a
// message is never sent before it is due.
func TestThePacerNeverWakesEarly(t *testing.T) {
	p := newPacer(time.Millisecond)
	defer p.close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Microsecond):
				// The runtime's own preemption signal, which it ignores
				// when it asked for nothing.
				_ = syscall.Kill(os.Getpid(), syscall.SIGURG)
			}
		}
	}()
	for k := range 60 {
		d := time.Duration(k%6+1) * 400 * time.Microsecond
		start := time.Now()
		p.sleep(d)
		if took := time.Since(start); took < d {
			t.Fatalf("slept %v of %v", took, d)
		}
	}
}
