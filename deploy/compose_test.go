package deploy

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

var (
	composeOnce    sync.Once
	composeProject *types.Project
	composeErr     error
)

// loadCompose loads docker-compose.yml with compose-go, the parser Docker
// Compose itself uses: schema validation, YAML merge keys, interpolation of
// ${VAR:-default} from an empty environment (so the defaults are what is
// tested, whatever the shell running the tests has set), and no Docker.
func loadCompose(t testing.TB) *types.Project {
	t.Helper()
	composeOnce.Do(func() {
		abs, err := filepath.Abs(root)
		if err != nil {
			composeErr = err
			return
		}
		composeProject, composeErr = loader.LoadWithContext(context.Background(), types.ConfigDetails{
			WorkingDir:  abs,
			ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(abs, "docker-compose.yml")}},
			Environment: types.Mapping{},
		}, func(o *loader.Options) { o.SetProjectName("wisp", true) })
	})
	if composeErr != nil {
		t.Fatalf("docker-compose.yml: %v", composeErr)
	}
	return composeProject
}

// TestComposeLoads also checks each wisp service builds from the one
// Dockerfile with its SERVICE and the repository root as context, and
// declares the ports it listens on.
func TestComposeLoads(t *testing.T) {
	f := mustFacts(t)
	p := loadCompose(t)
	for _, svc := range f.Services {
		s, ok := p.Services[svc]
		if !ok {
			continue // TestEveryServiceIsDeployed reports it
		}
		if s.Build == nil {
			t.Errorf("%s: no build section", svc)
			continue
		}
		ctx, _ := filepath.Abs(root)
		if filepath.Clean(s.Build.Context) != ctx {
			t.Errorf("%s: build context %s, want the repository root", svc, s.Build.Context)
		}
		if filepath.Clean(s.Build.Dockerfile) != "Dockerfile" {
			t.Errorf("%s: dockerfile %s, want the repository's Dockerfile", svc, s.Build.Dockerfile)
		}
		if arg := s.Build.Args["SERVICE"]; arg == nil || *arg != svc {
			t.Errorf("%s: build arg SERVICE = %v, want %s", svc, ptrString(arg), svc)
		}
		want := []string{strconv.Itoa(f.defaultPort(t, svc, "OPS_ADDR"))}
		if _, ok := f.defaultOf(svc, "HTTP_ADDR"); ok {
			want = append(want, strconv.Itoa(f.defaultPort(t, svc, "HTTP_ADDR")))
		}
		for _, port := range want {
			if !slices.Contains(s.Expose, port) {
				t.Errorf("%s: expose %v lacks %s, a port the service listens on", svc, s.Expose, port)
			}
		}
		if !strings.HasPrefix(s.Image, "wisp/"+svc+":") {
			t.Errorf("%s: image %q, want wisp/%s:TAG like the Kubernetes manifests", svc, s.Image, svc)
		}
	}
}

// TestComposeEnv: every setting each service reads is in its compose
// environment, with a value the service accepts.
func TestComposeEnv(t *testing.T) {
	f := mustFacts(t)
	p := loadCompose(t)
	for _, svc := range f.Services {
		s, ok := p.Services[svc]
		if !ok {
			continue
		}
		env := map[string]string{}
		for k, v := range s.Environment {
			if v == nil {
				t.Errorf("%s: %s has no value", svc, k)
				continue
			}
			if strings.Contains(*v, "${") {
				t.Errorf("%s: %s=%q was not interpolated", svc, k, *v)
			}
			env[k] = *v
		}
		checkEnv(t, f, svc, "docker-compose.yml", env)
		if got, want := portOf(t, env["OPS_ADDR"]), f.defaultPort(t, svc, "OPS_ADDR"); got != want {
			t.Errorf("%s: OPS_ADDR %q; the healthchecks and expose assume %d", svc, env["OPS_ADDR"], want)
		}
	}
}

// TestComposeScales: `docker compose up --scale X=N` works for every wisp
// service (no container_name, no published host port), only the proxy
// publishes a port, shutdowns are not cut short, and start-up order waits
// on health.
func TestComposeScales(t *testing.T) {
	f := mustFacts(t)
	p := loadCompose(t)
	publishers := []string{}
	for name, s := range p.Services {
		if len(s.Ports) > 0 {
			publishers = append(publishers, name)
		}
		if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0 {
			t.Errorf("%s: no healthcheck", name)
		}
		if s.Restart != "unless-stopped" {
			t.Errorf("%s: restart %q, want unless-stopped", name, s.Restart)
		}
		for dep, d := range s.DependsOn {
			if d.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s: depends on %s with condition %q, want service_healthy", name, dep, d.Condition)
			}
		}
	}
	if slices.Sort(publishers); !slices.Equal(publishers, []string{"proxy"}) {
		t.Errorf("services publishing host ports: %v, want only the proxy", publishers)
	}
	for _, svc := range f.Services {
		s, ok := p.Services[svc]
		if !ok {
			continue
		}
		if s.ContainerName != "" || s.Hostname != "" {
			t.Errorf("%s: container_name/hostname set; --scale needs them unset", svc)
		}
		env := s.Environment
		shutdown, err := time.ParseDuration(deref(env["SHUTDOWN_TIMEOUT"]))
		if err != nil {
			t.Errorf("%s: SHUTDOWN_TIMEOUT: %v", svc, err)
		}
		if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= shutdown {
			t.Errorf("%s: stop_grace_period %v must exceed SHUTDOWN_TIMEOUT %v, or Docker kills it mid-shutdown", svc, ptrString(s.StopGracePeriod), shutdown)
		}
		if hc := s.HealthCheck; hc != nil && !slices.Contains(hc.Test, "/healthcheck") {
			t.Errorf("%s: healthcheck %v, want the image's /healthcheck", svc, hc.Test)
		}
		if f.WithRedis[svc] {
			if _, ok := s.DependsOn["redis"]; !ok {
				t.Errorf("%s: uses Redis but does not wait for it", svc)
			}
		}
		if _, ok := s.DependsOn["nats"]; !ok {
			t.Errorf("%s: does not wait for nats", svc)
		}
		if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
			t.Errorf("%s: want read_only and cap_drop ALL, as in Kubernetes", svc)
		}
	}
}

// TestComposeRedis: persistence off.
func TestComposeRedis(t *testing.T) {
	s, ok := loadCompose(t).Services["redis"]
	if !ok {
		t.Fatal("no redis service")
	}
	args := strings.Join(quoteEmpty(s.Command), " ")
	for _, want := range []string{`--save ""`, "--appendonly no"} {
		if !strings.Contains(args, want) {
			t.Errorf("redis command %q lacks %s", args, want)
		}
	}
	if _, ok := loadCompose(t).Services["nats"]; !ok {
		t.Error("no nats service")
	}
}

// TestComposeProxy: the proxy in front of the gateway publishes the UI on
// 3000, passes what the gateway relies on (the browser's Host for its
// origin check, X-Forwarded-* from a network the gateway trusts, WebSocket
// upgrades) and does not time out quiet WebSockets.
func TestComposeProxy(t *testing.T) {
	f := mustFacts(t)
	p := loadCompose(t)
	proxy, ok := p.Services["proxy"]
	if !ok {
		t.Fatal("no proxy service")
	}
	if len(proxy.Ports) != 1 || proxy.Ports[0].Published != "3000" {
		t.Fatalf("proxy ports %+v, want the UI on host port 3000", proxy.Ports)
	}
	listen := proxy.Ports[0].Target
	if d, ok := proxy.DependsOn["gateway"]; !ok || d.Condition != types.ServiceConditionHealthy {
		t.Error("proxy does not wait for a healthy gateway")
	}

	var conf string
	for _, v := range proxy.Volumes {
		if v.Target == "/etc/nginx/conf.d/default.conf" {
			b, err := os.ReadFile(v.Source)
			if err != nil {
				t.Fatal(err)
			}
			conf = string(b)
		}
	}
	if conf == "" {
		t.Fatal("proxy mounts no nginx config at /etc/nginx/conf.d/default.conf")
	}
	conf = regexp.MustCompile(`(?m)#.*$`).ReplaceAllString(conf, "")
	httpPort := f.defaultPort(t, "gateway", "HTTP_ADDR")
	for _, want := range []string{
		`listen\s+` + strconv.Itoa(int(listen)) + `;`,
		`set\s+\$(\w+)\s+gateway:` + strconv.Itoa(httpPort) + `;`,
		`proxy_pass\s+http://\$\w+;`,
		`resolver\s+127\.0\.0\.11\b`,
		`proxy_http_version\s+1\.1;`,
		`proxy_set_header\s+Upgrade\s+\$http_upgrade;`,
		`proxy_set_header\s+Connection\s+\$connection_upgrade;`,
		`proxy_set_header\s+Host\s+\$http_host;`,
		`proxy_set_header\s+X-Forwarded-For\s+\$remote_addr;`,
		`proxy_set_header\s+X-Forwarded-Proto\s+\$scheme;`,
		`proxy_read_timeout\s+3600s;`,
		`proxy_send_timeout\s+3600s;`,
	} {
		if !regexp.MustCompile(want).MatchString(conf) {
			t.Errorf("deploy/compose/nginx.conf lacks /%s/", want)
		}
	}

	gw, ok := p.Services["gateway"]
	if !ok {
		t.Fatal("no gateway service")
	}
	trusted := strings.Split(deref(gw.Environment["TRUSTED_PROXIES"]), ",")
	for name := range proxy.Networks {
		net, ok := p.Networks[name]
		if !ok || len(net.Ipam.Config) == 0 {
			t.Errorf("network %s has no fixed subnet for TRUSTED_PROXIES to name", name)
			continue
		}
		subnet, err := netip.ParsePrefix(net.Ipam.Config[0].Subnet)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(trusted, subnet.String()) {
			t.Errorf("gateway TRUSTED_PROXIES %v does not trust the proxy's network %s", trusted, subnet)
		}
		if _, ok := gw.Networks[name]; !ok {
			t.Errorf("gateway is not on the proxy's network %s", name)
		}
	}
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func quoteEmpty(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" {
			a = `""`
		}
		out[i] = a
	}
	return out
}
