// Package testkit starts the real infrastructure wisp's tests run against: a
// redis-server child process on a free loopback port and an in-process NATS
// server on a random port. Nothing here touches a server someone else runs.
package testkit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
)

// Redis is a redis-server child process owned by one test.
type Redis struct {
	Addr  string
	URL   string
	port  int
	dir   string
	extra []string
	cmd   *exec.Cmd
}

// StartRedis starts redis-server on a free loopback port with keyspace
// notifications for expired keys on and persistence off; extra arguments
// ("--notify-keyspace-events", "") override those. It fails the test (it
// does not skip) when redis-server is missing, so CI cannot pass without
// the real thing.
func StartRedis(tb testing.TB, extra ...string) *Redis {
	tb.Helper()
	r, err := LaunchRedis(tb.TempDir(), extra...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(r.Stop)
	return r
}

// LaunchRedis starts redis-server with its files in dir; the caller stops it.
func LaunchRedis(dir string, extra ...string) (*Redis, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, fmt.Errorf("redis-server not found in PATH; install it (Debian: apt-get install -y redis-server): %w", err)
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	r := &Redis{port: port, dir: dir, extra: extra, Addr: "127.0.0.1:" + strconv.Itoa(port)}
	r.URL = "redis://" + r.Addr + "/0"
	if err := r.start(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Redis) start() error {
	args := append([]string{
		"--port", strconv.Itoa(r.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--notify-keyspace-events", "Ex",
		"--dir", r.dir,
		"--logfile", filepath.Join(r.dir, "redis.log"),
	}, r.extra...) // later arguments win
	r.cmd = exec.Command("redis-server", args...)
	r.cmd.Stdout, r.cmd.Stderr = os.Stderr, os.Stderr
	r.cmd.SysProcAttr = ChildProcAttr()
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := ping(c, r.Addr)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			r.Stop()
			return fmt.Errorf("redis-server on %s did not answer: %w", r.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ping asks the server at addr for PONG. Until it listens, a plain dial
// fails first: go-redis would log every refused dial (on the launcher's
// screen, too) while the server starts.
func ping(c *redis.Client, addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	_ = conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

// Stop kills the server; it is safe to call twice.
func (r *Redis) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// Freeze stops the server's process (SIGSTOP) without closing a socket: a
// stalled Redis, whose clients wait for replies that do not come. It is
// thawed when the test ends, if not before.
func (r *Redis) Freeze(tb testing.TB) {
	tb.Helper()
	if err := r.Stall(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = r.Thaw() })
}

// Stall is Freeze for callers without a testing.TB; Thaw ends it.
func (r *Redis) Stall() error {
	if r.cmd == nil || r.cmd.Process == nil {
		return errors.New("redis-server is not running")
	}
	return r.cmd.Process.Signal(syscall.SIGSTOP)
}

// Thaw resumes a frozen server (SIGCONT).
func (r *Redis) Thaw() error {
	if r.cmd == nil || r.cmd.Process == nil {
		return nil
	}
	return r.cmd.Process.Signal(syscall.SIGCONT)
}

// Restart stops the server and starts a new, empty one on the same port,
// as a crash and restart of a memory-only Redis would.
func (r *Redis) Restart(tb testing.TB) {
	tb.Helper()
	if err := r.Relaunch(); err != nil {
		tb.Fatal(err)
	}
}

// Relaunch is Restart for callers without a testing.TB.
func (r *Redis) Relaunch() error {
	r.Stop()
	return r.start()
}

// Client returns a go-redis client for the server, closed with the test.
func (r *Redis) Client(tb testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// StartNATS runs an in-process NATS server on a random loopback port.
func StartNATS(tb testing.TB) *server.Server {
	tb.Helper()
	s, err := LaunchNATS(-1)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Shutdown)
	return s
}

// LaunchNATS runs an in-process NATS server on port (-1: a random one).
func LaunchNATS(port int) (*server.Server, error) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		return nil, err
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("nats-server did not start")
	}
	return s, nil
}

// Connect opens a NATS client connection to s, closed with the test.
func Connect(tb testing.TB, s *server.Server) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// FreePort asks the kernel for a free loopback TCP port. The port is free
// only until someone binds it, and the kernel may offer a port it just
// freed again; so this process never hands out the same port twice, or
// two servers of one test system (started before either binds) could be
// given one port.
func FreePort() (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		givenMu.Lock()
		seen := given[port]
		given[port] = true
		givenMu.Unlock()
		if !seen {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no loopback port that was not handed out already")
}

var (
	givenMu sync.Mutex
	given   = map[int]bool{}
)

// Eventually polls check until it returns nil or timeout passes, then fails
// the test with the last error. Use it instead of sleeping.
func Eventually(tb testing.TB, timeout time.Duration, check func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("condition not met within %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
