package testkit

import (
	"context"
	"crypto/sha1" //nolint:gosec // a script's SHA-1 is how Redis names it, not a security measure
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"wisp/contract"
)

// ScriptSlots watches the Lua scripts a client runs (EVAL, EVALSHA and
// their read-only forms, alone or in pipelines) and records, per script,
// the Redis Cluster slots of the keys each call gave it. A script whose
// call spans two slots would fail on Redis Cluster with CROSSSLOT.
type ScriptSlots struct {
	mu    sync.Mutex
	runs  map[string]int // script SHA-1 -> calls seen
	cross []string       // calls whose keys span slots
}

// WatchScriptSlots adds a ScriptSlots hook to rdb.
func WatchScriptSlots(rdb redis.UniversalClient) *ScriptSlots {
	s := &ScriptSlots{runs: map[string]int{}}
	rdb.AddHook(s)
	return s
}

// RequireOneSlotEach fails the test unless every script in luaDir (its
// *.lua files, the sources the store embeds) was run at least once, and
// every call of every script was given keys of one slot only.
func (s *ScriptSlots) RequireOneSlotEach(tb testing.TB, luaDir string) {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(luaDir, "*.lua"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no Lua scripts in %s (%v)", luaDir, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		if s.runs[sha(string(src))] == 0 {
			tb.Errorf("script %s was never run: the test does not show it keeps to one slot", filepath.Base(f))
		}
	}
	for _, c := range s.cross {
		tb.Errorf("a script was given keys of several slots: %s", c)
	}
}

func sha(src string) string {
	sum := sha1.Sum([]byte(src)) //nolint:gosec // see the import
	return hex.EncodeToString(sum[:])
}

func (s *ScriptSlots) record(cmd redis.Cmder) {
	args := cmd.Args()
	name := strings.ToLower(cmd.Name())
	if len(args) < 3 || (name != "eval" && name != "evalsha" && name != "eval_ro" && name != "evalsha_ro") {
		return
	}
	script := fmt.Sprint(args[1])
	if strings.HasPrefix(name, "eval") && !strings.HasPrefix(name, "evalsha") {
		script = sha(script)
	}
	n, err := strconv.Atoi(fmt.Sprint(args[2]))
	if err != nil || len(args) < 3+n {
		return
	}
	slots := map[int][]string{}
	for _, k := range args[3 : 3+n] {
		key := fmt.Sprint(k)
		slots[contract.Slot(key)] = append(slots[contract.Slot(key)], key)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runs[script]++
	if len(slots) > 1 {
		var parts []string
		for slot, keys := range slots {
			parts = append(parts, fmt.Sprintf("slot %d: %s", slot, strings.Join(keys, " ")))
		}
		sort.Strings(parts)
		s.cross = append(s.cross, fmt.Sprintf("script %s… %s", script[:8], strings.Join(parts, "; ")))
	}
}

// DialHook implements redis.Hook.
func (s *ScriptSlots) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

// ProcessHook implements redis.Hook.
func (s *ScriptSlots) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		s.record(cmd)
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook implements redis.Hook.
func (s *ScriptSlots) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			s.record(c)
		}
		return next(ctx, cmds)
	}
}
