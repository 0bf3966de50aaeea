package deploy

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/modfile"
)

// What the Go code says about how it is deployed, read from its source so
// that a new setting, route or port fails these tests until the deployment
// files follow.

// root is the repository root: this module sits in deploy/.
const root = ".."

// envVar is one setting a service reads through platform/service.Env.
type envVar struct {
	Name    string
	Method  string   // String, Duration, Int, URL, URLs or RedisURL; "raw" for a direct getenv
	Default string   // the default's source text, unquoted when a string literal
	Schemes []string // for URL
}

// codeFacts is everything the deployment files must agree with.
type codeFacts struct {
	Services  []string            // from go.work: every module under services/
	GoVersion string              // go.work's go directive
	Env       map[string][]envVar // per service, shared settings included
	WithRedis map[string]bool     // LoadConfig's third argument, per service
	OpsPaths  map[string]bool     // paths platform/ops serves
	// ReadyTimeout is what platform/ops gives its readiness checks.
	ReadyTimeout time.Duration
}

var (
	factsOnce sync.Once
	facts     codeFacts
	factsErr  error
)

// mustFacts reads the code once per test binary.
func mustFacts(t testing.TB) codeFacts {
	t.Helper()
	factsOnce.Do(func() { facts, factsErr = readFacts() })
	if factsErr != nil {
		t.Fatal(factsErr)
	}
	return facts
}

func readFacts() (codeFacts, error) {
	f := codeFacts{Env: map[string][]envVar{}, WithRedis: map[string]bool{}}
	b, err := os.ReadFile(filepath.Join(root, "go.work"))
	if err != nil {
		return f, err
	}
	work, err := modfile.ParseWork("go.work", b, nil)
	if err != nil {
		return f, err
	}
	if work.Go != nil {
		f.GoVersion = work.Go.Version
	}
	for _, u := range work.Use {
		if dir := filepath.ToSlash(filepath.Clean(u.Path)); strings.HasPrefix(dir, "services/") {
			f.Services = append(f.Services, strings.TrimPrefix(dir, "services/"))
		}
	}
	sort.Strings(f.Services)
	if len(f.Services) == 0 {
		return f, fmt.Errorf("go.work uses no module under services/")
	}

	shared, redisOnly, err := sharedEnv(filepath.Join(root, "platform", "service", "config.go"))
	if err != nil {
		return f, err
	}
	for _, svc := range f.Services {
		vars, withRedis, err := serviceEnv(filepath.Join(root, "services", svc, "cmd", svc))
		if err != nil {
			return f, fmt.Errorf("%s: %w", svc, err)
		}
		f.WithRedis[svc] = withRedis
		all := append([]envVar(nil), shared...)
		if withRedis {
			all = append(all, redisOnly...)
		}
		f.Env[svc] = append(all, vars...)
	}

	f.OpsPaths, f.ReadyTimeout, err = opsRoutes(filepath.Join(root, "platform", "ops", "ops.go"))
	return f, err
}

// sharedEnv returns what LoadConfig reads for every service, and what it
// reads only when its withRedis argument is true.
func sharedEnv(path string) (always, redisOnly []envVar, err error) {
	file, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		return nil, nil, err
	}
	for _, d := range file.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "LoadConfig" || fn.Recv != nil {
			continue
		}
		envs, flag := map[string]bool{}, ""
		for _, p := range fn.Type.Params.List {
			for _, n := range p.Names {
				switch typeString(p.Type) {
				case "*Env":
					envs[n.Name] = true
				case "bool":
					flag = n.Name
				}
			}
		}
		// Settings inside `if withRedis { … }` are Redis-only.
		conditional := map[*ast.CallExpr]bool{}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			if is, ok := n.(*ast.IfStmt); ok {
				if id, ok := is.Cond.(*ast.Ident); ok && id.Name == flag {
					ast.Inspect(is.Body, func(n ast.Node) bool {
						if c, ok := n.(*ast.CallExpr); ok {
							conditional[c] = true
						}
						return true
					})
				}
			}
			return true
		})
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			c, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if v, ok := envCall(c, envs); ok {
				if conditional[c] {
					redisOnly = append(redisOnly, v)
				} else {
					always = append(always, v)
				}
			}
			return true
		})
		if len(always) == 0 {
			return nil, nil, fmt.Errorf("%s: LoadConfig reads no settings", path)
		}
		return always, redisOnly, nil
	}
	return nil, nil, fmt.Errorf("%s: no LoadConfig", path)
}

// serviceEnv returns the settings a service's cmd package reads itself and
// the withRedis argument it passes to LoadConfig.
func serviceEnv(dir string) ([]envVar, bool, error) {
	ignored := gitIgnored(dir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, false, err
	}
	var files []*ast.File
	fset := token.NewFileSet()
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") || ignored[name] {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, 0)
		if err != nil {
			return nil, false, err
		}
		files = append(files, f)
	}
	var (
		vars      []envVar
		withRedis *bool
	)
	for _, file := range files {
		// Variables holding a service.NewEnv(…).
		envs := map[string]bool{}
		ast.Inspect(file, func(n ast.Node) bool {
			if as, ok := n.(*ast.AssignStmt); ok && len(as.Lhs) == len(as.Rhs) {
				for i, rhs := range as.Rhs {
					if c, ok := rhs.(*ast.CallExpr); ok && strings.HasSuffix(typeString(c.Fun), "NewEnv") {
						if id, ok := as.Lhs[i].(*ast.Ident); ok {
							envs[id.Name] = true
						}
					}
				}
			}
			return true
		})
		ast.Inspect(file, func(n ast.Node) bool {
			c, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if v, ok := envCall(c, envs); ok {
				vars = append(vars, v)
			}
			if typeString(c.Fun) == "service.LoadConfig" && len(c.Args) == 3 {
				if id, ok := c.Args[2].(*ast.Ident); ok && (id.Name == "true" || id.Name == "false") {
					b := id.Name == "true"
					withRedis = &b
				}
			}
			return true
		})
	}
	if withRedis == nil {
		return nil, false, fmt.Errorf("%s: no service.LoadConfig(name, env, true|false) call", dir)
	}
	return vars, *withRedis, nil
}

// envCall recognises env.String("NAME", …) and its kin on a known Env
// variable, and direct reads: os.Getenv("NAME"), getenv("NAME").
func envCall(c *ast.CallExpr, envs map[string]bool) (envVar, bool) {
	if len(c.Args) == 0 {
		return envVar{}, false
	}
	name, ok := stringLit(c.Args[0])
	if !ok {
		return envVar{}, false
	}
	switch fun := c.Fun.(type) {
	case *ast.SelectorExpr:
		if id, ok := fun.X.(*ast.Ident); ok && envs[id.Name] {
			switch fun.Sel.Name {
			case "String", "Duration", "Int", "URL", "URLs", "RedisURL":
				v := envVar{Name: name, Method: fun.Sel.Name}
				if len(c.Args) > 1 {
					v.Default = exprString(c.Args[1])
				}
				for _, a := range c.Args[min(len(c.Args), 2):] {
					if s, ok := stringLit(a); ok {
						v.Schemes = append(v.Schemes, s)
					}
				}
				return v, true
			}
		}
		if typeString(fun) == "os.Getenv" || typeString(fun) == "os.LookupEnv" {
			return envVar{Name: name, Method: "raw"}, true
		}
	case *ast.Ident:
		if fun.Name == "getenv" {
			return envVar{Name: name, Method: "raw"}, true
		}
	}
	return envVar{}, false
}

// opsRoutes returns the paths registered on platform/ops's mux and the
// timeout its readiness handler gives the checks.
func opsRoutes(path string) (map[string]bool, time.Duration, error) {
	file, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		return nil, 0, err
	}
	paths := map[string]bool{}
	var ready time.Duration
	ast.Inspect(file, func(n ast.Node) bool {
		c, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := c.Fun.(*ast.SelectorExpr)
		if !ok || len(c.Args) < 2 {
			return true
		}
		switch sel.Sel.Name {
		case "HandleFunc", "Handle":
			if pattern, ok := stringLit(c.Args[0]); ok {
				// "GET /livez" → /livez
				f := strings.Fields(pattern)
				paths[f[len(f)-1]] = true
			}
		case "WithTimeout":
			if d, err := evalDuration(c.Args[1]); err == nil {
				ready = d
			}
		}
		return true
	})
	if len(paths) == 0 || ready == 0 {
		return nil, 0, fmt.Errorf("%s: found routes %v and readiness timeout %v", path, paths, ready)
	}
	return paths, ready, nil
}

// defaultOf returns the default of a service's setting.
func (f codeFacts) defaultOf(svc, name string) (string, bool) {
	for _, v := range f.Env[svc] {
		if v.Name == name {
			return v.Default, true
		}
	}
	return "", false
}

// defaultPort is the port of an address setting's default (":9090" → 9090).
func (f codeFacts) defaultPort(t testing.TB, svc, name string) int {
	t.Helper()
	def, ok := f.defaultOf(svc, name)
	if !ok {
		t.Fatalf("%s does not read %s", svc, name)
	}
	return portOf(t, def)
}

func portOf(t testing.TB, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return n
}

// evalDuration evaluates the constant durations the code writes:
// 20*time.Second, 250 * time.Millisecond, time.Minute.
func evalDuration(e ast.Expr) (time.Duration, error) {
	switch e := e.(type) {
	case *ast.ParenExpr:
		return evalDuration(e.X)
	case *ast.BasicLit:
		if e.Kind == token.INT {
			n, err := strconv.ParseInt(e.Value, 0, 64)
			return time.Duration(n), err
		}
	case *ast.SelectorExpr:
		units := map[string]time.Duration{
			"time.Nanosecond": time.Nanosecond, "time.Microsecond": time.Microsecond,
			"time.Millisecond": time.Millisecond, "time.Second": time.Second,
			"time.Minute": time.Minute, "time.Hour": time.Hour,
		}
		if d, ok := units[typeString(e)]; ok {
			return d, nil
		}
	case *ast.BinaryExpr:
		if e.Op == token.MUL {
			a, err := evalDuration(e.X)
			if err != nil {
				return 0, err
			}
			b, err := evalDuration(e.Y)
			return a * b, err
		}
	}
	return 0, fmt.Errorf("not a constant duration: %s", exprString(e))
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// exprString renders small expressions: literals unquoted, the rest as
// written (10*time.Minute).
func exprString(e ast.Expr) string {
	if s, ok := stringLit(e); ok {
		return s
	}
	return typeString(e)
}

func typeString(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.StarExpr:
		return "*" + typeString(e.X)
	case *ast.SelectorExpr:
		return typeString(e.X) + "." + e.Sel.Name
	case *ast.BasicLit:
		return e.Value
	case *ast.BinaryExpr:
		return typeString(e.X) + e.Op.String() + typeString(e.Y)
	case *ast.ParenExpr:
		return "(" + typeString(e.X) + ")"
	}
	return "?"
}

// TestCodeFacts guards the source reading itself: if a refactor hides the
// settings from it, every other test would pass vacuously.
func TestCodeFacts(t *testing.T) {
	f := mustFacts(t)
	for _, svc := range f.Services {
		names := map[string]bool{}
		for _, v := range f.Env[svc] {
			names[v.Name] = true
		}
		for _, want := range []string{"NATS_URL", "OPS_ADDR", "LOG_LEVEL", "SHUTDOWN_TIMEOUT"} {
			if !names[want] {
				t.Errorf("%s: %s not found among its settings %v", svc, want, names)
			}
		}
		// A service may also read REDIS_URL itself for an optional use
		// (the gateway's shared rate limits).
		if f.WithRedis[svc] && !names["REDIS_URL"] {
			t.Errorf("%s: LoadConfig withRedis = true, but REDIS_URL is not among its settings", svc)
		}
		t.Logf("%s reads %d settings (Redis: %v)", svc, len(names), f.WithRedis[svc])
	}
	if slices.Contains(f.Services, "gateway") {
		if _, ok := f.defaultOf("gateway", "HTTP_ADDR"); !ok {
			t.Error("gateway: HTTP_ADDR not found")
		}
	}
	for _, p := range []string{"/livez", "/readyz", "/metrics"} {
		if !f.OpsPaths[p] {
			t.Errorf("platform/ops serves %v, not %s", f.OpsPaths, p)
		}
	}
}

// gitIgnored names the files in dir that git ignores: someone's local
// experiment (say a pprof hook listed in .git/info/exclude) is not part of
// the code being deployed. Without git, nothing is ignored.
func gitIgnored(dir string) map[string]bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		names = append(names, filepath.Join(dir, e.Name()))
	}
	cmd := exec.Command("git", "check-ignore", "--stdin")
	cmd.Stdin = strings.NewReader(strings.Join(names, "\n") + "\n")
	out, _ := cmd.Output() // exit status 1: nothing ignored
	ignored := map[string]bool{}
	for _, line := range strings.Fields(string(out)) {
		ignored[filepath.Base(line)] = true
	}
	return ignored
}
