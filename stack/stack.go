// Package stack runs a whole wisp system on one machine: Redis (a child
// redis-server unless a URL is given), NATS (in-process unless a URL is
// given) and the service binaries as child processes, any number of
// replicas each. `make run`, the end-to-end tests and the benchmarks use it.
package stack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"wisp/testkit"
)

// Services are wisp's binaries, in the order they are stopped last to first
// (the gateway stops first so no new work reaches the others).
var Services = []string{"rooms", "messages", "expiry", "gateway"}

// Options say what to run.
type Options struct {
	BinDir   string            // where the service binaries are
	RedisURL string            // use this Redis instead of starting one
	NATSURL  string            // use this NATS instead of an in-process one
	NATSBin  string            // run this nats-server binary instead of an in-process server
	HTTPAddr string            // first gateway's address; more gateways get free ports
	Replicas map[string]int    // per service; 1 when unset
	Env      map[string]string // extra environment for every service
	Logs     io.Writer         // where service logs go (prefixed); discarded when nil
	Dir      string            // scratch directory (Redis files)
}

// Proc is one running service process.
type Proc struct {
	Service string
	Index   int
	OpsURL  string
	HTTPURL string // gateways only
	cmd     *exec.Cmd
	exited  chan struct{}
	err     error
}

// Stack is a running system.
type Stack struct {
	RedisURL string
	NATSURL  string
	Procs    []*Proc

	redis   *testkit.Redis
	nats    *server.Server
	natsCmd *exec.Cmd
	opts    Options
	mu      sync.Mutex
}

// Start runs the system and waits until every service is ready.
func Start(ctx context.Context, opts Options) (*Stack, error) {
	if opts.Logs == nil {
		opts.Logs = io.Discard
	}
	s := &Stack{RedisURL: opts.RedisURL, NATSURL: opts.NATSURL, opts: opts}
	if s.RedisURL == "" {
		dir := opts.Dir
		if dir == "" {
			d, err := os.MkdirTemp("", "wisp-redis-")
			if err != nil {
				return nil, err
			}
			dir = d
		}
		r, err := testkit.LaunchRedis(dir)
		if err != nil {
			return nil, err
		}
		s.redis, s.RedisURL = r, r.URL
	}
	if s.NATSURL == "" && opts.NATSBin != "" {
		if err := s.startNATSProcess(opts.NATSBin); err != nil {
			s.Stop(context.Background())
			return nil, err
		}
	}
	if s.NATSURL == "" {
		ns, err := testkit.LaunchNATS(-1)
		if err != nil {
			s.Stop(context.Background())
			return nil, err
		}
		s.nats, s.NATSURL = ns, ns.ClientURL()
	}
	for _, name := range Services {
		n := opts.Replicas[name]
		if n == 0 {
			n = 1
		}
		for i := range n {
			if _, err := s.Spawn(name, i); err != nil {
				s.Stop(context.Background())
				return nil, err
			}
		}
	}
	if err := s.WaitReady(ctx); err != nil {
		s.Stop(context.Background())
		return nil, err
	}
	return s, nil
}

// Spawn starts one more process of service.
func (s *Stack) Spawn(service string, index int) (*Proc, error) {
	opsPort, err := testkit.FreePort()
	if err != nil {
		return nil, err
	}
	p := &Proc{Service: service, Index: index, OpsURL: "http://127.0.0.1:" + strconv.Itoa(opsPort), exited: make(chan struct{})}
	env := append(os.Environ(),
		"NATS_URL="+s.NATSURL,
		"REDIS_URL="+s.RedisURL,
		"OPS_ADDR=127.0.0.1:"+strconv.Itoa(opsPort),
	)
	if service == "gateway" {
		addr := s.opts.HTTPAddr
		if addr == "" || s.gateways() > 0 {
			port, err := testkit.FreePort()
			if err != nil {
				return nil, err
			}
			addr = "127.0.0.1:" + strconv.Itoa(port)
		}
		env = append(env, "HTTP_ADDR="+addr)
		p.HTTPURL = "http://" + dialable(addr)
	}
	for k, v := range s.opts.Env {
		env = append(env, k+"="+v)
	}
	cmd := exec.Command(filepath.Join(s.opts.BinDir, service))
	cmd.Env = env
	// The children die with the launcher, even on SIGKILL.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	prefix := fmt.Sprintf("%s-%d | ", service, index)
	cmd.Stdout = prefixWriter(s.opts.Logs, prefix)
	cmd.Stderr = prefixWriter(s.opts.Logs, prefix)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", service, err)
	}
	p.cmd = cmd
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	s.mu.Lock()
	s.Procs = append(s.Procs, p)
	s.mu.Unlock()
	return p, nil
}

func (s *Stack) gateways() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, p := range s.Procs {
		if p.Service == "gateway" {
			n++
		}
	}
	return n
}

// dialable turns a listen address (":3000") into one a client can dial.
func dialable(addr string) string {
	if strings.HasPrefix(addr, ":") {
		return "localhost" + addr
	}
	return addr
}

// WaitReady waits until every live process answers /readyz.
func (s *Stack) WaitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, p := range s.Live() {
		for {
			if err := p.Ready(); err == nil {
				break
			}
			select {
			case <-p.exited:
				return fmt.Errorf("%s-%d exited during start: %v", p.Service, p.Index, p.err)
			case <-ctx.Done():
				return fmt.Errorf("%s-%d not ready: %w", p.Service, p.Index, ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// Ready returns nil when the process's /readyz answers 200.
func (p *Proc) Ready() error {
	resp, err := http.Get(p.OpsURL + "/readyz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz %d", resp.StatusCode)
	}
	return nil
}

// Exited is closed when the process has ended.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Err is how the process ended (after Exited).
func (p *Proc) Err() error { return p.err }

// Pid is the process id (for reading its memory use).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Live returns the processes that have not exited.
func (s *Stack) Live() []*Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Proc
	for _, p := range s.Procs {
		select {
		case <-p.exited:
		default:
			out = append(out, p)
		}
	}
	return out
}

// Gateways returns the base URLs of the live gateways.
func (s *Stack) Gateways() []string {
	var out []string
	for _, p := range s.Live() {
		if p.HTTPURL != "" {
			out = append(out, p.HTTPURL)
		}
	}
	return out
}

// Watch returns a channel that yields each live process when it ends.
func (s *Stack) Watch() <-chan *Proc {
	ch := make(chan *Proc, len(s.Procs))
	for _, p := range s.Live() {
		go func() { <-p.exited; ch <- p }()
	}
	return ch
}

// Stop ends every process with SIGTERM (gateways first), SIGKILL for any
// that outlives the deadline, then NATS and Redis.
func (s *Stack) Stop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var errs []error
	for i := len(Services) - 1; i >= 0; i-- {
		var group []*Proc
		for _, p := range s.Live() {
			if p.Service == Services[i] {
				group = append(group, p)
				_ = p.cmd.Process.Signal(syscall.SIGTERM)
			}
		}
		for _, p := range group {
			select {
			case <-p.exited:
				if p.err != nil {
					errs = append(errs, fmt.Errorf("%s-%d: %w", p.Service, p.Index, p.err))
				}
			case <-ctx.Done():
				_ = p.cmd.Process.Kill()
				<-p.exited
				errs = append(errs, fmt.Errorf("%s-%d did not stop in time", p.Service, p.Index))
			}
		}
	}
	if s.nats != nil {
		s.nats.Shutdown()
	}
	if s.natsCmd != nil {
		_ = s.natsCmd.Process.Kill()
		_ = s.natsCmd.Wait()
	}
	if s.redis != nil {
		s.redis.Stop()
	}
	return errors.Join(errs...)
}

// startNATSProcess runs a nats-server binary on a free loopback port.
func (s *Stack) startNATSProcess(bin string) error {
	port, err := testkit.FreePort()
	if err != nil {
		return err
	}
	return s.runNATS(bin, port)
}

func (s *Stack) runNATS(bin string, port int) error {
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stdout = prefixWriter(s.opts.Logs, "nats | ")
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start nats-server: %w", err)
	}
	s.natsCmd, s.NATSURL = cmd, "nats://127.0.0.1:"+strconv.Itoa(port)
	return nil
}

// RestartNATS kills the nats-server process and starts a new one on the
// same port after down (only with Options.NATSBin).
func (s *Stack) RestartNATS(down time.Duration) error {
	if s.natsCmd == nil {
		return errors.New("NATS is not a child process of this stack")
	}
	_ = s.natsCmd.Process.Kill()
	_ = s.natsCmd.Wait()
	time.Sleep(down)
	port, err := strconv.Atoi(s.NATSURL[strings.LastIndexByte(s.NATSURL, ':')+1:])
	if err != nil {
		return err
	}
	return s.runNATS(s.opts.NATSBin, port)
}

// RestartRedis kills the child redis-server and starts an empty one on
// the same port, as a crash of a memory-only Redis would.
func (s *Stack) RestartRedis() error {
	if s.redis == nil {
		return errors.New("Redis is not a child process of this stack")
	}
	return s.redis.Relaunch()
}

// BuildNATS compiles nats-server from its Go module into dir.
func BuildNATS(ctx context.Context, dir string) (string, error) {
	root, err := Root()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "nats-server")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/nats-io/nats-server/v2")
	cmd.Dir = filepath.Join(root, "stack")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build nats-server: %v\n%s", err, out)
	}
	return bin, nil
}

// Build compiles the service binaries into dir from the workspace root.
func Build(ctx context.Context, dir string) error {
	root, err := Root()
	if err != nil {
		return err
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, name := range Services {
		args = append(args, "./services/"+name+"/cmd/"+name)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	return nil
}

// Root is the workspace root (the folder of go.work).
func Root() (string, error) {
	out, err := exec.Command("go", "env", "GOWORK").Output()
	if err != nil {
		return "", err
	}
	gowork := strings.TrimSpace(string(out))
	if gowork == "" || gowork == "off" {
		return "", errors.New("not inside the wisp workspace (no go.work)")
	}
	return filepath.Dir(gowork), nil
}

func prefixWriter(w io.Writer, prefix string) io.Writer {
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintf(w, "%s%s\n", prefix, sc.Text())
		}
	}()
	return pw
}
