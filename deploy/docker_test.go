package deploy

import (
	"bufio"
	"bytes"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"golang.org/x/mod/modfile"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	Cmd  string // upper case: FROM, COPY, RUN, …
	Args string
	Line int
}

// stage is one FROM and what follows it.
type stage struct {
	From, Name string
	Ins        []instruction
}

// dockerfile is the repository's one Dockerfile; SERVICE says which service
// an image holds.
var dockerfile = filepath.Join(root, "Dockerfile")

// stagesFor parses the Dockerfile as `docker build --build-arg
// SERVICE=svc` reads it: ARG values substituted where Docker substitutes
// them (an ARG before the first FROM only in FROM lines, one inside a
// stage from there on in that stage).
func stagesFor(t testing.TB, svc string) []stage {
	t.Helper()
	return parseDockerfile(t, dockerfile, map[string]string{"SERVICE": svc})
}

func parseDockerfile(t testing.TB, file string, buildArgs map[string]string) []stage {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var (
		stages  []stage
		buf     strings.Builder
		start   int
		global  = map[string]string{}
		inStage map[string]string
	)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if buf.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if buf.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(line, `\`) {
			buf.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		buf.WriteString(line)
		cmd, args, _ := strings.Cut(buf.String(), " ")
		buf.Reset()
		in := instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args), Line: start}
		if in.Cmd == "ARG" {
			name, def, _ := strings.Cut(in.Args, "=")
			v, ok := buildArgs[name]
			if !ok {
				v = def
			}
			if len(stages) == 0 {
				global[name] = v
			} else {
				inStage[name] = v
			}
			continue
		}
		if in.Cmd == "FROM" {
			f := flagsOff(strings.Fields(expandArgs(in.Args, global)))
			s := stage{From: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.Name = f[2]
			}
			stages = append(stages, s)
			inStage = map[string]string{}
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("%s:%d: %s before FROM", file, start, in.Cmd)
		}
		// RUN sees ARGs as environment variables of its shell; Docker itself
		// expands them in the other instructions. Either way the stage must
		// declare the ARG, or the value is empty.
		in.Args = expandArgs(in.Args, inStage)
		stages[len(stages)-1].Ins = append(stages[len(stages)-1].Ins, in)
	}
	if len(stages) < 2 {
		t.Fatalf("%s: %d stages, want a build stage and a runtime stage", file, len(stages))
	}
	return stages
}

// expandArgs substitutes $NAME and ${NAME} as Docker does; an undeclared
// name becomes empty.
func expandArgs(s string, args map[string]string) string {
	return os.Expand(s, func(name string) string { return args[name] })
}

// flagsOff drops leading --flags (--platform=…, --from=…, --mount=…).
func flagsOff(f []string) []string {
	for len(f) > 0 && strings.HasPrefix(f[0], "--") {
		f = f[1:]
	}
	return f
}

func flagValue(args, name string) string {
	for _, f := range strings.Fields(args) {
		if v, ok := strings.CutPrefix(f, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.Ins {
		if in.Cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// execArgs parses the JSON (exec) form of CMD/ENTRYPOINT/HEALTHCHECK CMD.
func execArgs(s string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`).FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestDockerfile: for each service, the image is built by a Go toolchain at
// least as new as the service's go directive, statically (CGO_ENABLED=0,
// -trimpath, -s -w), from that service's ./cmd, and runs from a final
// distroless stage as a non-root user, holding only the binaries (no
// sources, no toolchain), exposing the ops port, with a HEALTHCHECK that
// runs a binary the image has.
func TestDockerfile(t *testing.T) {
	f := mustFacts(t)
	for _, svc := range f.Services {
		t.Run(svc, func(t *testing.T) {
			stages := stagesFor(t, svc)
			build, final := stages[0], stages[len(stages)-1]

			goMod := readGoMod(t, filepath.Join(root, "services", svc, "go.mod"))
			image, tag, _ := strings.Cut(build.From, ":")
			if image != "golang" || !versionAtLeast(tag, goMod.Go.Version) {
				t.Errorf("build stage FROM %s; want golang:X.Y with X.Y ≥ the module's go %s", build.From, goMod.Go.Version)
			}
			env := strings.Join(argsOf(build.all("ENV")), " ")
			if !strings.Contains(env, "CGO_ENABLED=0") {
				t.Errorf("build stage does not set CGO_ENABLED=0 (ENV %s)", env)
			}
			built := map[string]string{} // output path -> package
			for _, in := range build.all("RUN") {
				if !strings.Contains(in.Args, "go build") {
					continue
				}
				for _, want := range []string{"-trimpath", `-ldflags="-s -w"`} {
					if !strings.Contains(in.Args, want) {
						t.Errorf("line %d: go build without %s", in.Line, want)
					}
				}
				words := strings.Fields(in.Args)
				if i := slices.Index(words, "-o"); i >= 0 && i+1 < len(words) {
					built[words[i+1]] = words[len(words)-1]
				}
			}
			if !slices.Contains(slices.Collect(maps.Values(built)), "./cmd/"+svc) {
				t.Errorf("no RUN builds ./cmd/%s (builds %v)", svc, built)
			}

			if !strings.HasPrefix(final.From, "gcr.io/distroless/static") || strings.Contains(final.From, "golang") {
				t.Errorf("final stage FROM %s; want gcr.io/distroless/static (no shell, no toolchain)", final.From)
			}
			files := map[string]string{} // what the final image holds -> the package built into it
			for _, in := range final.all("COPY") {
				if flagValue(in.Args, "from") != build.Name || build.Name == "" {
					t.Errorf("line %d: final stage COPY %s does not come from the build stage: sources stay out of the image", in.Line, in.Args)
				}
				f := flagsOff(strings.Fields(in.Args))
				dst := f[len(f)-1]
				for _, src := range f[:len(f)-1] {
					files[path.Join(dst, path.Base(src))] = built[src]
				}
			}
			for _, bad := range []string{"RUN", "ADD"} {
				if ins := final.all(bad); len(ins) > 0 {
					t.Errorf("final stage has %s at line %d (distroless has no shell; use the build stage)", bad, ins[0].Line)
				}
			}
			users := final.all("USER")
			if len(users) == 0 {
				t.Error("final stage sets no USER")
			} else {
				user, _, _ := strings.Cut(users[len(users)-1].Args, ":")
				if uid, err := strconv.Atoi(user); err != nil || uid == 0 {
					// Kubernetes can check runAsNonRoot only against a numeric user.
					t.Errorf("final USER %q, want a numeric non-zero uid", users[len(users)-1].Args)
				}
			}
			entry := final.all("ENTRYPOINT")
			if len(entry) != 1 || len(execArgs(entry[0].Args)) != 1 {
				t.Errorf("ENTRYPOINT %v, want one binary in exec form (so SIGTERM reaches the service)", entry)
			} else if bin := execArgs(entry[0].Args)[0]; files[bin] != "./cmd/"+svc {
				t.Errorf("ENTRYPOINT %s holds %q, want the build of ./cmd/%s (image holds %v)", bin, files[bin], svc, files)
			}
			hc := final.all("HEALTHCHECK")
			if len(hc) != 1 {
				t.Fatalf("final stage has %d HEALTHCHECKs, want 1", len(hc))
			}
			_, cmd, _ := strings.Cut(hc[0].Args, "CMD ")
			if args := execArgs(cmd); len(args) == 0 || files[args[0]] != "wisp/platform/cmd/healthcheck" {
				t.Errorf("HEALTHCHECK runs %v, which is not the healthcheck binary the final stage holds (%v)", args, files)
			}
			var exposed []int
			for _, in := range final.all("EXPOSE") {
				for _, p := range strings.Fields(in.Args) {
					n, _ := strconv.Atoi(strings.TrimSuffix(p, "/tcp"))
					exposed = append(exposed, n)
				}
			}
			// The gateway's HTTP port is declared by compose and the
			// manifests (TestComposeLoads, TestProbesMatchCode): one image
			// recipe serves every service.
			if want := []int{f.defaultPort(t, svc, "OPS_ADDR")}; !slices.Equal(exposed, want) {
				t.Errorf("EXPOSE %v, want the ops port every service listens on %v", exposed, want)
			}
		})
	}
}

// TestDockerBuildContext replays the Dockerfile's build stage here, once
// per SERVICE: the
// build context as .dockerignore leaves it, each COPY into a scratch
// directory, ENV and WORKDIR, then each RUN's go command — `go mod
// download` as written, `go build` as `go list -deps`, which resolves every
// module from go.mod and go.sum alone (-mod=readonly) and every package and
// embedded file from what was copied, without compiling. A module, go.sum
// line or embedded file that the image would lack fails here, not in
// `docker build`.
func TestDockerBuildContext(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	ctxFiles := buildContext(t)
	for _, svc := range mustFacts(t).Services {
		t.Run(svc, func(t *testing.T) {
			t.Parallel()
			replayBuildStage(t, goBin, stagesFor(t, svc)[0], ctxFiles)
		})
	}
}

// buildContext lists the files `docker build .` would send from the
// repository root, applying .dockerignore as Docker does.
func buildContext(t testing.TB) map[string]bool {
	t.Helper()
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]bool{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if d.IsDir() {
			if rel == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		excluded, err := pm.MatchesOrParentMatches(rel)
		if err != nil {
			return err
		}
		if !excluded {
			files[rel] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func replayBuildStage(t *testing.T, goBin string, s stage, ctxFiles map[string]bool) {
	scratch := t.TempDir()
	workdir := "/"
	// The toolchain of this machine stands in for the image's; GOTOOLCHAIN
	// keeps it from fetching another.
	env := append(os.Environ(), "GOTOOLCHAIN=local")
	host := func(p string) string {
		if !path.IsAbs(p) {
			p = path.Join(workdir, p)
		}
		return filepath.Join(scratch, filepath.FromSlash(p))
	}
	for _, in := range s.Ins {
		switch in.Cmd {
		case "WORKDIR":
			if path.IsAbs(in.Args) {
				workdir = in.Args
			} else {
				workdir = path.Join(workdir, in.Args)
			}
		case "ENV":
			for _, kv := range strings.Fields(in.Args) {
				if !strings.Contains(kv, "=") {
					t.Fatalf("line %d: ENV %s: use KEY=value", in.Line, in.Args)
				}
				env = append(env, kv)
			}
		case "COPY":
			if flagValue(in.Args, "from") != "" {
				continue
			}
			f := flagsOff(strings.Fields(in.Args))
			dst := f[len(f)-1]
			for _, src := range f[:len(f)-1] {
				src = strings.TrimSuffix(path.Clean(src), "/")
				n := 0
				for rel := range ctxFiles {
					switch {
					case rel == src:
						target := host(dst)
						if strings.HasSuffix(dst, "/") {
							target = filepath.Join(target, path.Base(rel))
						}
						copyFile(t, filepath.Join(root, rel), target)
						n++
					case strings.HasPrefix(rel, src+"/"):
						copyFile(t, filepath.Join(root, rel), filepath.Join(host(dst), strings.TrimPrefix(rel, src+"/")))
						n++
					}
				}
				if n == 0 {
					t.Errorf("line %d: COPY %s: nothing in the build context (missing, or excluded by .dockerignore)", in.Line, src)
				}
			}
		case "RUN":
			f := flagsOff(strings.Fields(in.Args))
			dir := workdir
			for _, part := range strings.Split(strings.Join(f, " "), "&&") {
				words := strings.Fields(part)
				switch {
				case len(words) == 2 && words[0] == "cd":
					dir = path.Join(dir, words[1])
				case len(words) >= 3 && words[0] == "go" && words[1] == "mod" && words[2] == "download":
					runGo(t, goBin, host(dir), env, in.Line, words[1:]...)
				case len(words) >= 2 && words[0] == "go" && words[1] == "build":
					pkg := words[len(words)-1]
					runGo(t, goBin, host(dir), env, in.Line, "list", "-e", "-deps",
						"-f", "{{with .Error}}{{.}}\n{{end}}{{range .DepsErrors}}{{.}}\n{{end}}", pkg)
				default:
					t.Fatalf("line %d: RUN %q: this test replays only cd, go mod download and go build; teach it the new step", in.Line, part)
				}
			}
		}
	}
}

func runGo(t *testing.T, goBin, dir string, env []string, line int, args ...string) {
	t.Helper()
	cmd := exec.Command(goBin, args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	if err != nil || (args[0] == "list" && len(bytes.TrimSpace(out)) > 0) {
		// go list repeats a missing package once per importer.
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		slices.Sort(lines)
		t.Errorf("line %d: go %s (in %s): %v\n%s", line, args[0], dir, err, strings.Join(slices.Compact(lines), "\n"))
	}
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readGoMod(t testing.TB, file string) *modfile.File {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m, err := modfile.ParseLax(file, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Go == nil {
		t.Fatalf("%s: no go directive", file)
	}
	return m
}

func argsOf(ins []instruction) []string {
	var out []string
	for _, in := range ins {
		out = append(out, in.Args)
	}
	return out
}

// versionAtLeast compares an image tag such as 1.26 with a go directive
// such as 1.26.0, on major.minor: a golang:1.26 image has the newest 1.26.x.
func versionAtLeast(tag, goVersion string) bool {
	mm := func(v string) [2]int {
		var out [2]int
		for i, p := range strings.SplitN(v, ".", 3)[:min(2, len(strings.SplitN(v, ".", 3)))] {
			out[i], _ = strconv.Atoi(p)
		}
		return out
	}
	a, b := mm(tag), mm(goVersion)
	return a[0] > b[0] || (a[0] == b[0] && a[1] >= b[1])
}
