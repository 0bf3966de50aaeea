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
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"wisp/testkit"
)

// Services are wisp's binaries, in the order they are stopped last to first
// (the gateway stops first so no new work reaches the others).
var Services = []string{"rooms", "messages", "expiry", "gateway"}

// Options say what to run.
type Options struct {
	BinDir   string         // where the service binaries are
	RedisURL string         // use this Redis instead of starting one
	NATSURL  string         // use this NATS instead of an in-process one
	NATSBin  string         // run this nats-server binary instead of an in-process server
	HTTPAddr string         // first gateway's address; more gateways get free ports
	Replicas map[string]int // per service; 1 when unset
	// LogFormat is the services' LOG_FORMAT, "json" when empty: their
	// output reaches Logs through a pipe, so they cannot tell a terminal
	// themselves. Env may still override it.
	LogFormat string
	Env       map[string]string // extra environment for every service
	Logs      io.Writer         // where service logs go (prefixed); discarded when nil
	Dir       string            // scratch directory (Redis files)
	// EnvFor, when set, adds environment for one process, after Env (a
	// gateway attached to its own node of a NATS cluster).
	EnvFor func(service string, index int) map[string]string
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

// System is a running wisp: its Redis, its NATS and its service processes.
type System struct {
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
func Start(ctx context.Context, opts Options) (*System, error) {
	if opts.Logs == nil {
		opts.Logs = io.Discard
	}
	if opts.LogFormat == "" {
		opts.LogFormat = "json"
	}
	s := &System{RedisURL: opts.RedisURL, NATSURL: opts.NATSURL, opts: opts}
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
			_ = s.Stop(context.Background()) // the start error is the one to report
			return nil, err
		}
	}
	if s.NATSURL == "" {
		ns, err := testkit.LaunchNATS(-1)
		if err != nil {
			_ = s.Stop(context.Background())
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
				_ = s.Stop(context.Background())
				return nil, err
			}
		}
	}
	if err := s.WaitReady(ctx); err != nil {
		_ = s.Stop(context.Background())
		return nil, err
	}
	return s, nil
}

// OneProc are the processes run with GOMAXPROCS=1 (unless the environment
// or Options set it): three services that wait on Redis and NATS more than
// they compute, and a child nats-server, which hands messages on. On a
// machine the whole system shares, each process's idle threads spinning
// for work took cores from the others (bench/NOTES.md has the figures).
// docker-compose.yml and deploy (base; overlays/dev for NATS) set the same.
var OneProc = []string{"rooms", "messages", "expiry", "nats-server"}

// oneProc adds GOMAXPROCS=1 to env when name is in OneProc.
func oneProc(env []string, name string) []string {
	if slices.Contains(OneProc, name) && os.Getenv("GOMAXPROCS") == "" {
		env = append(env, "GOMAXPROCS=1")
	}
	return env
}

// Spawn starts one more process of service.
func (s *System) Spawn(service string, index int) (*Proc, error) {
	opsPort, err := testkit.FreePort()
	if err != nil {
		return nil, err
	}
	p := &Proc{Service: service, Index: index, OpsURL: "http://127.0.0.1:" + strconv.Itoa(opsPort), exited: make(chan struct{})}
	env := append(os.Environ(),
		"NATS_URL="+s.NATSURL,
		"REDIS_URL="+s.RedisURL,
		"OPS_ADDR=127.0.0.1:"+strconv.Itoa(opsPort),
		"LOG_FORMAT="+s.opts.LogFormat,
	)
	env = oneProc(env, service)
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
	if s.opts.EnvFor != nil {
		for k, v := range s.opts.EnvFor(service, index) {
			env = append(env, k+"="+v)
		}
	}
	cmd := exec.Command(filepath.Join(s.opts.BinDir, service))
	cmd.Env = env
	cmd.SysProcAttr = testkit.ChildProcAttr()
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

func (s *System) gateways() int {
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
func (s *System) WaitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, p := range s.Live() {
		for {
			if err := p.Ready(); err == nil {
				break
			}
			select {
			case <-p.exited:
				return fmt.Errorf("%s-%d exited during start: %w", p.Service, p.Index, p.err)
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

// LiveProc returns the first live process of service, nil if none.
func (s *System) LiveProc(service string) *Proc {
	for _, p := range s.Live() {
		if p.Service == service {
			return p
		}
	}
	return nil
}

// Live returns the processes that have not exited.
func (s *System) Live() []*Proc {
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
func (s *System) Gateways() []string {
	var out []string
	for _, p := range s.Live() {
		if p.HTTPURL != "" {
			out = append(out, p.HTTPURL)
		}
	}
	return out
}

// Describe writes what the system runs, for a person: Redis, NATS and each
// live process with its addresses, one aligned line each, every line
// starting with indent.
func (s *System) Describe(w io.Writer, indent string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	redis := "REDIS_URL"
	if s.redis != nil {
		redis = "child redis-server, keyspace events on, nothing on disk"
	}
	nats := "NATS_URL"
	switch {
	case s.nats != nil:
		nats = "in-process server"
	case s.natsCmd != nil:
		nats = "child nats-server"
	}
	fmt.Fprintf(tw, "%sredis\t%s\t%s\n", indent, s.RedisURL, redis)
	fmt.Fprintf(tw, "%snats\t%s\t%s\n", indent, s.NATSURL, nats)
	for _, p := range s.Live() {
		what := "ops " + p.OpsURL
		if p.HTTPURL != "" {
			what = "http " + p.HTTPURL + "  " + what
		}
		fmt.Fprintf(tw, "%s%s-%d\tpid %d\t%s\n", indent, p.Service, p.Index, p.Pid(), what)
	}
	return tw.Flush()
}

// Watch returns a channel that yields each live process when it ends.
func (s *System) Watch() <-chan *Proc {
	ch := make(chan *Proc, len(s.Procs))
	for _, p := range s.Live() {
		go func() { <-p.exited; ch <- p }()
	}
	return ch
}

// Stop ends every process with SIGTERM (gateways first), SIGKILL for any
// that outlives the deadline, then NATS and Redis.
func (s *System) Stop(ctx context.Context) error {
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
func (s *System) startNATSProcess(bin string) error {
	port, err := testkit.FreePort()
	if err != nil {
		return err
	}
	return s.runNATS(bin, port)
}

func (s *System) runNATS(bin string, port int) error {
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Env = oneProc(os.Environ(), "nats-server")
	cmd.SysProcAttr = testkit.ChildProcAttr()
	cmd.Stdout = prefixWriter(s.opts.Logs, "nats | ")
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start nats-server: %w", err)
	}
	s.natsCmd, s.NATSURL = cmd, "nats://127.0.0.1:"+strconv.Itoa(port)
	return waitNATS(s.NATSURL, 10*time.Second)
}

// waitNATS returns once a client can connect to url. Services would retry
// on their own, but what they announce at start (expiry's "check your
// rooms" on a new Redis) would then come seconds later, mid-run.
func waitNATS(url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		nc, err := nats.Connect(url, nats.Timeout(time.Second))
		if err == nil {
			nc.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nats-server at %s: %w", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// RestartNATS kills the nats-server process and starts a new one on the
// same port after down (only with Options.NATSBin).
func (s *System) RestartNATS(down time.Duration) error {
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
func (s *System) RestartRedis() error {
	if s.redis == nil {
		return errors.New("redis is not a child process of this stack")
	}
	return s.redis.Relaunch()
}

// StallRedis freezes the child redis-server (SIGSTOP) for d, then lets it
// go on: its clients' requests hang meanwhile, as with a stalled host.
func (s *System) StallRedis(d time.Duration) error {
	if s.redis == nil {
		return errors.New("redis is not a child process of this stack")
	}
	if err := s.redis.Stall(); err != nil {
		return err
	}
	time.Sleep(d)
	return s.redis.Thaw()
}

// Kill ends p with SIGKILL and waits for it to be gone.
func (p *Proc) Kill() error {
	if err := p.cmd.Process.Kill(); err != nil {
		return err
	}
	<-p.exited
	return nil
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
		return "", fmt.Errorf("build nats-server: %w\n%s", err, out)
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
		return fmt.Errorf("go build: %w\n%s", err, out)
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
