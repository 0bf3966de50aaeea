package e2e

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"wisp/stack"
	"wisp/stack/client"
	"wisp/testkit"
)

// TestMakeRun starts the whole system the way the README says — `make
// run` — uses it over HTTP and WebSocket, then presses Ctrl-C (SIGINT to
// the process group) and checks nothing is left running.
func TestMakeRun(t *testing.T) {
	root, err := stack.Root()
	if err != nil {
		t.Fatal(err)
	}
	port, _ := testkit.FreePort()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command("make", "run")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "HTTP_ADDR="+addr, "ROOM_TTL=30s")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })

	lines := make(chan string, 1024)
	var transcript strings.Builder
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	waitFor := func(want string, within time.Duration) {
		t.Helper()
		deadline := time.After(within)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("make run ended before %q:\n%s", want, transcript.String())
				}
				transcript.WriteString(l + "\n")
				if strings.Contains(l, want) {
					return
				}
			case <-deadline:
				t.Fatalf("no %q within %v:\n%s", want, within, transcript.String())
			}
		}
	}
	waitFor("wisp is running: open http://"+addr, 3*time.Minute)
	// Starting prints no errors: the launcher waited for redis-server
	// without go-redis logging each refused dial.
	if strings.Contains(transcript.String(), "failed to dial") {
		t.Errorf("make run printed connection errors while starting:\n%s", transcript.String())
	}

	ctx := context.Background()
	base := "http://" + addr
	alice, bob := client.New(base), client.New(base)
	id, err := alice.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*client.Person{alice, bob} {
		if err := p.Join(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	ws, err := bob.Dial(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if _, err := alice.Send(ctx, id, "alice", "hi"); err != nil {
		t.Fatal(err)
	}
	if f, err := ws.Next(5 * time.Second); err != nil || f.Event != "chat.message" {
		t.Fatalf("websocket: %v %v", f, err)
	}
	if ttl, err := bob.TTL(ctx, id); err != nil || ttl < 25 || ttl > 30 {
		t.Fatalf("ROOM_TTL not honoured: ttl %d %v", ttl, err)
	}

	// Ctrl-C.
	if err := syscall.Kill(-pgid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	waitFor("wisp stopped", time.Minute)
	done := make(chan error, 1)
	go func() {
		for range lines {
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		// make reports the Ctrl-C it was sent too (exit 2, "Interrupt"):
		// what counts is that it ended, with nothing left behind.
		t.Logf("make run ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("make run did not exit after Ctrl-C")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("gateway still listening after Ctrl-C")
	}
	if left := processesUnder(filepath.Join(root, "bin")); len(left) > 0 {
		t.Fatalf("processes left behind: %v", left)
	}
	if left := processesInGroup(pgid); len(left) > 0 {
		t.Fatalf("processes left in the group: %v", left)
	}
}

// processesUnder lists live processes whose executable is in dir.
func processesUnder(dir string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, exe := range procs {
		target, err := os.Readlink(exe)
		if err == nil && strings.HasPrefix(target, dir+string(filepath.Separator)) {
			out = append(out, exe+" -> "+target)
		}
	}
	return out
}

// processesInGroup lists live processes of the process group.
func processesInGroup(pgid int) []string {
	var out []string
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, st := range stats {
		data, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		// Fields after the command name (which is in parentheses).
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 3 && f[3] == strconv.Itoa(pgid) && f[0] != "Z" {
			out = append(out, st+": "+s[:i+1])
		}
	}
	return out
}
