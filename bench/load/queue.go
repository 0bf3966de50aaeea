package load

import "sync"

// sendQueue holds the due messages of one sender (a member, or the shared
// pool's senders). The schedule never waits on it: push appends whatever
// the sender's backlog, so a slow sender delays only its own messages, and
// the delay counts in their latency.
type sendQueue struct {
	mu     sync.Mutex
	items  []int
	closed bool
	wake   chan struct{} // one pending wake-up at most
}

func newSendQueue() *sendQueue { return &sendQueue{wake: make(chan struct{}, 1)} }

func (q *sendQueue) push(i int) {
	q.mu.Lock()
	q.items = append(q.items, i)
	q.mu.Unlock()
	q.signal()
}

func (q *sendQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

func (q *sendQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take waits for due messages and appends all of them to buf (max of them
// at most, when max > 0); false once the queue is closed and empty.
func (q *sendQueue) take(buf []int, max int) ([]int, bool) {
	for {
		q.mu.Lock()
		if n := len(q.items); n > 0 {
			if max > 0 && n > max {
				n = max
			}
			buf = append(buf, q.items[:n]...)
			q.items = q.items[:copy(q.items, q.items[n:])]
			more := len(q.items) > 0
			q.mu.Unlock()
			if more {
				q.signal() // another sender of a shared queue may take the rest
			}
			return buf, true
		}
		if q.closed {
			q.mu.Unlock()
			q.signal() // wake the next waiter of a shared queue too
			return buf, false
		}
		q.mu.Unlock()
		<-q.wake
	}
}
