package ws

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
)

// On Linux an idle socket is parked in one epoll set shared by the
// process, so it keeps no goroutine (and no goroutine stack) while its
// peer is quiet. Interest is one-shot and level-triggered: a turn re-arms
// it when it has read everything, and arming a socket that already has
// bytes waiting reports them at once, so nothing that arrives in between
// is missed. Go's own poller keeps its registration of the descriptor;
// reads still go through the connection.

// polled: sockets park between messages.
const polled = true

type poller struct {
	fd    int
	mu    sync.Mutex
	socks map[uint64]*Socket
	next  uint64
}

var (
	pollerOnce sync.Once
	procPoller *poller
	pollerErr  error
)

// thePoller is the process's poller, started on first use.
func thePoller() (*poller, error) {
	pollerOnce.Do(func() { procPoller, pollerErr = newPoller() })
	return procPoller, pollerErr
}

// newPoller makes the epoll set and waits on it through Go's own poller
// (an epoll set is itself readable while it has events), so waking a
// parked socket costs no thread of its own blocked in epoll_wait.
func newPoller() (*poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		_ = syscall.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "ws-epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	p := &poller{fd: fd, socks: map[uint64]*Socket{}}
	go p.run(rc, f)
	return p, nil
}

// run hands each socket with bytes waiting (or a hang-up) to a turn of its
// own, for as long as the process lives.
func (p *poller) run(rc syscall.RawConn, f *os.File) {
	defer runtime.KeepAlive(f) // the file owns the descriptor
	events := make([]syscall.EpollEvent, 256)
	ready := make([]*Socket, 0, len(events))
	err := rc.Read(func(fd uintptr) bool {
		for {
			n, err := syscall.EpollWait(int(fd), events, 0)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if err != nil || n <= 0 {
				return false // nothing (more) now: wait until there is
			}
			ready = ready[:0]
			p.mu.Lock()
			for _, ev := range events[:n] {
				if k := p.socks[eventID(ev)]; k != nil {
					ready = append(ready, k)
				}
			}
			p.mu.Unlock()
			for _, k := range ready {
				k.wakeReader(true)
			}
		}
	})
	panic("ws: the epoll set failed: " + fmt.Sprint(err)) // it is never closed
}

func eventID(ev syscall.EpollEvent) uint64 { return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32 }

// arm asks the poller to resume k once the peer has sent something.
func (k *Socket) arm() error {
	p, err := thePoller()
	if err != nil {
		return err
	}
	op := syscall.EPOLL_CTL_MOD
	if k.pollID == 0 {
		op = syscall.EPOLL_CTL_ADD
		p.mu.Lock()
		p.next++
		k.pollID = p.next
		p.socks[k.pollID] = k
		p.mu.Unlock()
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT,
		Fd: int32(uint32(k.pollID)), Pad: int32(uint32(k.pollID >> 32))}
	var ctlErr error
	// Control holds the descriptor open, so it cannot be closed and its
	// number reused for another connection meanwhile.
	if err := k.raw.Control(func(fd uintptr) { ctlErr = syscall.EpollCtl(p.fd, op, int(fd), &ev) }); err != nil {
		return err
	}
	return ctlErr
}

// unpoll forgets k; its descriptor leaves the epoll set when it closes.
func (k *Socket) unpoll() {
	if k.pollID == 0 {
		return
	}
	if p, err := thePoller(); err == nil {
		p.mu.Lock()
		delete(p.socks, k.pollID)
		p.mu.Unlock()
	}
}

// readable reports whether a byte (or the end of the stream) waits to be
// read, without taking it and without blocking.
func (k *Socket) readable() bool {
	var b [1]byte
	ready := true
	_ = k.raw.Control(func(fd uintptr) {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ready = n > 0 || !errors.Is(err, syscall.EAGAIN)
	})
	return ready
}
