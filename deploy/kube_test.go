package deploy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"wisp/platform/service"
)

// manifests is one rendered kustomization, every object in its typed form.
type manifests struct {
	Deployments     []appsv1.Deployment
	Services        []corev1.Service
	ConfigMaps      []corev1.ConfigMap
	Namespaces      []corev1.Namespace
	HPAs            []autoscalingv2.HorizontalPodAutoscaler
	PDBs            []policyv1.PodDisruptionBudget
	NetworkPolicies []networkingv1.NetworkPolicy
	Ingresses       []networkingv1.Ingress
}

// kinds maps each apiVersion/kind that wisp's manifests may contain to
// where its typed form goes. A kind missing here fails the render test, so
// a new kind is decoded strictly too.
var kinds = map[string]func(m *manifests) any{
	"apps/v1/Deployment": func(m *manifests) any {
		m.Deployments = append(m.Deployments, appsv1.Deployment{})
		return &m.Deployments[len(m.Deployments)-1]
	},
	"v1/Service": func(m *manifests) any {
		m.Services = append(m.Services, corev1.Service{})
		return &m.Services[len(m.Services)-1]
	},
	"v1/ConfigMap": func(m *manifests) any {
		m.ConfigMaps = append(m.ConfigMaps, corev1.ConfigMap{})
		return &m.ConfigMaps[len(m.ConfigMaps)-1]
	},
	"v1/Namespace": func(m *manifests) any {
		m.Namespaces = append(m.Namespaces, corev1.Namespace{})
		return &m.Namespaces[len(m.Namespaces)-1]
	},
	"autoscaling/v2/HorizontalPodAutoscaler": func(m *manifests) any {
		m.HPAs = append(m.HPAs, autoscalingv2.HorizontalPodAutoscaler{})
		return &m.HPAs[len(m.HPAs)-1]
	},
	"policy/v1/PodDisruptionBudget": func(m *manifests) any {
		m.PDBs = append(m.PDBs, policyv1.PodDisruptionBudget{})
		return &m.PDBs[len(m.PDBs)-1]
	},
	"networking.k8s.io/v1/NetworkPolicy": func(m *manifests) any {
		m.NetworkPolicies = append(m.NetworkPolicies, networkingv1.NetworkPolicy{})
		return &m.NetworkPolicies[len(m.NetworkPolicies)-1]
	},
	"networking.k8s.io/v1/Ingress": func(m *manifests) any {
		m.Ingresses = append(m.Ingresses, networkingv1.Ingress{})
		return &m.Ingresses[len(m.Ingresses)-1]
	},
}

// overlays are the deployable kustomizations: every directory in overlays/.
func overlays(t testing.TB) []string {
	t.Helper()
	entries, err := os.ReadDir("overlays")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, filepath.Join("overlays", e.Name()))
		}
	}
	if len(dirs) == 0 {
		t.Fatal("no overlays")
	}
	return dirs
}

var renders sync.Map // dir → *renderResult

type renderResult struct {
	once sync.Once
	m    *manifests
	err  error
}

// render builds a kustomization with the kustomize Go API (what `kubectl
// kustomize` runs) and decodes every object strictly; it is done once per
// directory and shared by the tests.
func render(t testing.TB, dir string) *manifests {
	t.Helper()
	v, _ := renders.LoadOrStore(dir, &renderResult{})
	r := v.(*renderResult)
	r.once.Do(func() { r.m, r.err = renderDir(dir) })
	if r.err != nil {
		t.Fatalf("%s: %v", dir, r.err)
	}
	return r.m
}

func renderDir(dir string) (*manifests, error) {
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, err
	}
	m := &manifests{}
	var errs []error
	for _, res := range resMap.Resources() {
		key := res.GetApiVersion() + "/" + res.GetKind()
		id := fmt.Sprintf("%s %s", key, res.GetName())
		into, ok := kinds[key]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: kind not known to these tests", id))
			continue
		}
		data, err := res.MarshalJSON()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id, err))
			continue
		}
		if err := decodeStrict(data, into(m)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id, err))
		}
	}
	return m, errors.Join(errs...)
}

// TestKustomizeRenders renders the base and every overlay and decodes each
// object into its k8s.io/api type, refusing unknown and duplicate fields as
// the API server's strict field validation does.
func TestKustomizeRenders(t *testing.T) {
	for _, dir := range append([]string{"base"}, overlays(t)...) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m := render(t, dir)
			if len(m.Deployments) == 0 || len(m.ConfigMaps) == 0 {
				t.Fatalf("rendered %d Deployments and %d ConfigMaps", len(m.Deployments), len(m.ConfigMaps))
			}
		})
	}
}

// TestStrictDecodeRefusesUnknownFields proves the decoder used above is
// strict, so a misspelt field cannot slip through as silently ignored.
func TestStrictDecodeRefusesUnknownFields(t *testing.T) {
	for _, doc := range []string{
		`{"apiVersion":"apps/v1","kind":"Deployment","spec":{"replica":2}}`,
		`{"apiVersion":"apps/v1","kind":"Deployment","spec":{"Replicas":2}}`,
		`{"apiVersion":"apps/v1","kind":"Deployment","spec":{"replicas":2,"replicas":3}}`,
	} {
		if err := decodeStrict([]byte(doc), &appsv1.Deployment{}); err == nil {
			t.Errorf("accepted %s", doc)
		}
	}
}

// TestEveryServiceIsDeployed: each service module in go.work has a compose
// service, and in every overlay a Deployment, a Service, an HPA scaling
// that Deployment and a PDB covering its pods. (TestDockerfile checks that
// the Dockerfile builds each one.)
func TestEveryServiceIsDeployed(t *testing.T) {
	f := mustFacts(t)
	project := loadCompose(t)
	for _, svc := range f.Services {
		if _, ok := project.Services[svc]; !ok {
			t.Errorf("%s: no service in docker-compose.yml", svc)
		}
	}
	for _, dir := range overlays(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m := render(t, dir)
			for _, svc := range f.Services {
				d := m.deployment(svc)
				if d == nil {
					t.Errorf("%s: no Deployment", svc)
					continue
				}
				if d.Spec.Replicas != nil {
					t.Errorf("%s: Deployment sets replicas; the HPA owns the count", svc)
				}
				pods := labels.Set(d.Spec.Template.Labels)
				sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
				if err != nil || !sel.Matches(pods) {
					t.Errorf("%s: Deployment selector %v does not match its pods %v (%v)", svc, d.Spec.Selector, pods, err)
				}
				if s := m.service(svc); s == nil || !labels.SelectorFromSet(s.Spec.Selector).Matches(pods) {
					t.Errorf("%s: no Service selecting its pods", svc)
				}

				var hpa *autoscalingv2.HorizontalPodAutoscaler
				for i := range m.HPAs {
					ref := m.HPAs[i].Spec.ScaleTargetRef
					if ref.Kind == "Deployment" && ref.APIVersion == "apps/v1" && ref.Name == svc {
						hpa = &m.HPAs[i]
					}
				}
				switch {
				case hpa == nil:
					t.Errorf("%s: no HorizontalPodAutoscaler for its Deployment", svc)
				case hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 1 || hpa.Spec.MaxReplicas < *hpa.Spec.MinReplicas:
					t.Errorf("%s: HPA replicas min %v max %d", svc, hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
				case len(hpa.Spec.Metrics) == 0:
					t.Errorf("%s: HPA has no metric", svc)
				}

				var pdb *policyv1.PodDisruptionBudget
				for i := range m.PDBs {
					sel, err := metav1.LabelSelectorAsSelector(m.PDBs[i].Spec.Selector)
					if err == nil && !sel.Empty() && sel.Matches(pods) {
						pdb = &m.PDBs[i]
					}
				}
				switch {
				case pdb == nil:
					t.Errorf("%s: no PodDisruptionBudget selecting its pods", svc)
				case pdb.Spec.MinAvailable != nil && hpa != nil && hpa.Spec.MinReplicas != nil &&
					pdb.Spec.MinAvailable.IntValue() >= int(*hpa.Spec.MinReplicas):
					// A budget the minimum replica count cannot meet blocks every node drain.
					t.Errorf("%s: PDB minAvailable %s with as few as %d replicas", svc, pdb.Spec.MinAvailable.String(), *hpa.Spec.MinReplicas)
				}
			}
		})
	}
}

// TestEnvInConfigMap: every setting each service reads is in the ConfigMap
// its Deployment loads, and the value parses the way the service parses it
// (platform/service's own Env and LoadConfig).
func TestEnvInConfigMap(t *testing.T) {
	f := mustFacts(t)
	for _, dir := range overlays(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m := render(t, dir)
			for _, svc := range f.Services {
				if env, ok := m.serviceEnv(t, svc); ok {
					checkEnv(t, f, svc, "ConfigMap "+dir, env)
				}
			}
		})
	}
}

// TestOneProcAgrees: docker compose and every overlay run the same
// processes with GOMAXPROCS=1 (stack.OneProc, the launcher on one machine,
// too): services, and NATS where the overlay runs it.
func TestOneProcAgrees(t *testing.T) {
	f := mustFacts(t)
	p := loadCompose(t)
	names := append(slices.Clone(f.Services), "nats")
	var want []string
	for _, name := range names {
		if s, ok := p.Services[name]; ok {
			if v := s.Environment["GOMAXPROCS"]; v != nil && *v == "1" {
				want = append(want, name)
			}
		}
	}
	if !slices.Contains(want, "nats") || len(want) < 2 {
		t.Fatalf("docker-compose.yml runs %v with GOMAXPROCS=1; want NATS and services", want)
	}
	for _, dir := range overlays(t) {
		m := render(t, dir)
		var got, here []string
		for _, name := range names {
			env, ok := m.serviceEnv(t, name)
			if !ok {
				continue
			}
			if slices.Contains(want, name) {
				here = append(here, name)
			}
			if env["GOMAXPROCS"] == "1" {
				got = append(got, name)
			}
		}
		if !slices.Equal(got, here) {
			t.Errorf("%s runs %v with GOMAXPROCS=1; docker-compose.yml %v", dir, got, want)
		}
	}
}

// checkEnv is shared with the compose test: every variable present, every
// value valid.
func checkEnv(t *testing.T, f codeFacts, svc, where string, env map[string]string) {
	t.Helper()
	for _, v := range f.Env[svc] {
		if _, ok := env[v.Name]; !ok {
			t.Errorf("%s: %s reads %s (default %q), which %s does not set", svc, svc, v.Name, v.Default, where)
		}
	}
	getenv := func(k string) string { return env[k] }
	e := service.NewEnv(getenv)
	service.LoadConfig(svc, e, f.WithRedis[svc])
	for _, v := range f.Env[svc] {
		switch v.Method {
		case "Duration":
			e.Duration(v.Name, time.Second)
		case "Int":
			e.Int(v.Name, 1)
		case "URL":
			e.URL(v.Name, "", v.Schemes...)
		case "URLs":
			e.URLs(v.Name, "", v.Schemes...)
		case "RedisURL":
			e.RedisURL(v.Name, "")
		}
		if check, ok := stringChecks[v.Name]; ok && env[v.Name] != "" {
			if err := check(env[v.Name]); err != nil {
				e.Fail(fmt.Errorf("%s=%q: %w", v.Name, env[v.Name], err))
			}
		}
	}
	if err := e.Err(); err != nil {
		t.Errorf("%s: %s holds values the service refuses:\n%v", svc, where, err)
	}
}

// stringChecks validate the String settings whose parsing lives in a
// service's main package, where a test cannot reach it.
var stringChecks = map[string]func(string) error{
	"RATE_LIMITS": func(v string) error {
		if v != "on" && v != "off" {
			return errors.New("want on or off")
		}
		return nil
	},
	"TRUSTED_PROXIES": func(v string) error {
		for _, p := range strings.Split(v, ",") {
			if !validIPOrCIDR(strings.TrimSpace(p)) {
				return fmt.Errorf("%q is not an IP or CIDR", p)
			}
		}
		return nil
	},
	"ALLOWED_ORIGINS": func(v string) error {
		for _, o := range strings.Split(v, ",") {
			if o = strings.TrimSpace(o); o != "" && !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
				return fmt.Errorf("%q is not scheme://host", o)
			}
		}
		return nil
	},
	"OPS_ADDR":  validAddr,
	"HTTP_ADDR": validAddr,
}

// TestProbesMatchCode: the probes ask paths platform/ops serves, on the
// port OPS_ADDR listens on; the gateway's http port is HTTP_ADDR's; the
// readiness timeout outlasts the checks' own; Services and the Ingress
// point at ports that exist.
func TestProbesMatchCode(t *testing.T) {
	f := mustFacts(t)
	for _, dir := range overlays(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m := render(t, dir)
			for _, svc := range f.Services {
				d := m.deployment(svc)
				if d == nil {
					continue
				}
				c := &d.Spec.Template.Spec.Containers[0]
				env, err := m.containerEnv(d)
				if err != nil {
					t.Fatal(err)
				}
				opsPort := f.defaultPort(t, svc, "OPS_ADDR")
				if got := portOf(t, env["OPS_ADDR"]); got != opsPort {
					t.Errorf("%s: OPS_ADDR %q, but the manifests assume the default port %d", svc, env["OPS_ADDR"], opsPort)
				}
				if p := containerPort(c, "ops"); p != opsPort {
					t.Errorf("%s: container port ops = %d, want %d (OPS_ADDR)", svc, p, opsPort)
				}
				if svc == "gateway" {
					httpPort := f.defaultPort(t, svc, "HTTP_ADDR")
					if got := portOf(t, env["HTTP_ADDR"]); got != httpPort {
						t.Errorf("gateway: HTTP_ADDR %q, but the manifests assume port %d", env["HTTP_ADDR"], httpPort)
					}
					if p := containerPort(c, "http"); p != httpPort {
						t.Errorf("gateway: container port http = %d, want %d (HTTP_ADDR)", p, httpPort)
					}
				}

				for _, pr := range []struct {
					kind  string
					probe *corev1.Probe
					path  string
				}{{"liveness", c.LivenessProbe, "/livez"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
					if pr.probe == nil || pr.probe.HTTPGet == nil {
						t.Errorf("%s: no HTTP %s probe", svc, pr.kind)
						continue
					}
					g := pr.probe.HTTPGet
					if g.Path != pr.path || !f.OpsPaths[g.Path] {
						t.Errorf("%s: %s probe asks %s; want %s, served by platform/ops (%v)", svc, pr.kind, g.Path, pr.path, f.OpsPaths)
					}
					if resolvePort(c, g.Port) != opsPort {
						t.Errorf("%s: %s probe on port %s, want the ops port %d", svc, pr.kind, g.Port.String(), opsPort)
					}
				}
				if r := c.ReadinessProbe; r != nil && time.Duration(r.TimeoutSeconds)*time.Second <= f.ReadyTimeout {
					t.Errorf("%s: readiness timeout %ds does not outlast the checks' own %v", svc, r.TimeoutSeconds, f.ReadyTimeout)
				}
				if s := m.service(svc); s != nil {
					for _, p := range s.Spec.Ports {
						if resolvePort(c, p.TargetPort) == 0 {
							t.Errorf("%s: Service port %s targets %s, which the container does not have", svc, p.Name, p.TargetPort.String())
						}
					}
				}
			}
		})
	}
}

// TestShutdownFitsGracePeriod: the kubelet's SIGKILL comes after the preStop
// pause and the service's whole bounded shutdown (SHUTDOWN_TIMEOUT).
func TestShutdownFitsGracePeriod(t *testing.T) {
	f := mustFacts(t)
	for _, dir := range overlays(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m := render(t, dir)
			for _, svc := range f.Services {
				d := m.deployment(svc)
				if d == nil {
					continue
				}
				env, err := m.containerEnv(d)
				if err != nil {
					t.Fatal(err)
				}
				shutdown, err := time.ParseDuration(env["SHUTDOWN_TIMEOUT"])
				if err != nil {
					t.Fatalf("%s: SHUTDOWN_TIMEOUT: %v", svc, err)
				}
				var preStop time.Duration
				c := d.Spec.Template.Spec.Containers[0]
				if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
					switch h := c.Lifecycle.PreStop; {
					case h.Sleep != nil:
						preStop = time.Duration(h.Sleep.Seconds) * time.Second
					case h.Exec != nil:
						t.Errorf("%s: preStop exec needs a shell the distroless image lacks; use sleep", svc)
					}
				}
				grace := d.Spec.Template.Spec.TerminationGracePeriodSeconds
				if grace == nil || time.Duration(*grace)*time.Second <= preStop+shutdown {
					t.Errorf("%s: terminationGracePeriodSeconds %v must exceed preStop %v + SHUTDOWN_TIMEOUT %v", svc, ptrString(grace), preStop, shutdown)
				}
			}
		})
	}
}

// TestPodSecurity: every pod, wisp's and the dev Redis and NATS alike,
// meets the restricted Pod Security Standard and has resources set; the
// namespaces enforce that standard.
func TestPodSecurity(t *testing.T) {
	for _, dir := range overlays(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m := render(t, dir)
			for _, d := range m.Deployments {
				pod := d.Spec.Template.Spec
				ps := pod.SecurityContext
				if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.SeccompProfile == nil ||
					ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
					t.Errorf("%s: pod securityContext needs runAsNonRoot and seccompProfile RuntimeDefault", d.Name)
				}
				if ps != nil && ps.RunAsUser != nil && *ps.RunAsUser == 0 {
					t.Errorf("%s: runs as root", d.Name)
				}
				if pod.HostNetwork || pod.HostPID || pod.HostIPC {
					t.Errorf("%s: shares a host namespace", d.Name)
				}
				if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
					t.Errorf("%s: mounts a service account token it never uses", d.Name)
				}
				for _, c := range append(pod.InitContainers, pod.Containers...) {
					sc := c.SecurityContext
					if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
						sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
						sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 ||
						(sc.Privileged != nil && *sc.Privileged) {
						t.Errorf("%s/%s: container securityContext must forbid privilege escalation, drop ALL capabilities and mount / read-only", d.Name, c.Name)
					}
					for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
						req, lim := c.Resources.Requests[r], c.Resources.Limits[r]
						if req.IsZero() || lim.IsZero() || req.Cmp(lim) > 0 {
							t.Errorf("%s/%s: %s request %s and limit %s", d.Name, c.Name, r, req.String(), lim.String())
						}
					}
					if i := strings.LastIndex(c.Image, ":"); i < 0 || strings.Contains(c.Image[i:], "/") || strings.HasSuffix(c.Image, ":latest") {
						t.Errorf("%s/%s: image %q has no pinned tag", d.Name, c.Name, c.Image)
					}
				}
			}
			for _, ns := range m.Namespaces {
				if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
					t.Errorf("namespace %s does not enforce the restricted Pod Security Standard", ns.Name)
				}
			}
		})
	}
}

// TestNetworkPolicies: all ingress is denied by default; of wisp's pods
// only the gateway's HTTP port admits any source; ops is open to the
// monitoring namespace; in-cluster Redis and NATS admit only wisp's pods.
func TestNetworkPolicies(t *testing.T) {
	f := mustFacts(t)
	for _, dir := range overlays(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m := render(t, dir)
			denyAll := false
			for _, np := range m.NetworkPolicies {
				if len(np.Spec.PodSelector.MatchLabels) == 0 && len(np.Spec.PodSelector.MatchExpressions) == 0 &&
					slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) && len(np.Spec.Ingress) == 0 {
					denyAll = true
				}
			}
			if !denyAll {
				t.Error("no default-deny ingress NetworkPolicy")
			}
			for _, d := range m.Deployments {
				pods := labels.Set(d.Spec.Template.Labels)
				c := &d.Spec.Template.Spec.Containers[0]
				openPorts, monitored := map[int]bool{}, false
				for _, np := range m.NetworkPolicies {
					sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
					if err != nil {
						t.Fatalf("%s: %v", np.Name, err)
					}
					if !sel.Matches(pods) {
						continue
					}
					for _, rule := range np.Spec.Ingress {
						for _, p := range rule.Ports {
							port := 0
							if p.Port != nil {
								port = resolvePort(c, *p.Port)
							}
							if len(rule.From) == 0 {
								openPorts[port] = true
							}
							for _, from := range rule.From {
								if from.NamespaceSelector != nil && from.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == "monitoring" &&
									port == containerPort(c, "ops") {
									monitored = true
								}
							}
						}
						if len(rule.Ports) == 0 && len(rule.From) == 0 {
							openPorts[-1] = true // every port from everywhere
						}
					}
				}
				isWisp := slices.Contains(f.Services, d.Name)
				switch {
				case d.Name == "gateway":
					want := map[int]bool{f.defaultPort(t, "gateway", "HTTP_ADDR"): true}
					if !mapsEqual(openPorts, want) {
						t.Errorf("gateway: ports open to all %v, want only HTTP %v", keys(openPorts), keys(want))
					}
				case len(openPorts) > 0:
					t.Errorf("%s: ports %v are open to every source; only the gateway may be", d.Name, keys(openPorts))
				}
				if isWisp && !monitored {
					t.Errorf("%s: ops port not open to the monitoring namespace", d.Name)
				}
			}
		})
	}
}

// TestIngress: the gateway is reached through an Ingress on its http port,
// with timeouts a WebSocket survives.
func TestIngress(t *testing.T) {
	for _, dir := range overlays(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m := render(t, dir)
			if len(m.Ingresses) != 1 {
				t.Fatalf("%d Ingresses, want 1", len(m.Ingresses))
			}
			ing := m.Ingresses[0]
			for _, a := range []string{"proxy-read-timeout", "proxy-send-timeout"} {
				v, err := strconv.Atoi(ing.Annotations["nginx.ingress.kubernetes.io/"+a])
				if err != nil || v < 3600 {
					t.Errorf("annotation %s = %q, want ≥ 3600 s for long-lived WebSockets", a, ing.Annotations["nginx.ingress.kubernetes.io/"+a])
				}
			}
			gw := m.service("gateway")
			if gw == nil {
				t.Fatal("no gateway Service")
			}
			for _, rule := range ing.Spec.Rules {
				if rule.HTTP == nil || len(rule.HTTP.Paths) == 0 {
					t.Errorf("rule %q routes nothing", rule.Host)
					continue
				}
				for _, p := range rule.HTTP.Paths {
					b := p.Backend.Service
					if b == nil || b.Name != "gateway" {
						t.Errorf("rule %q path %s does not go to the gateway Service", rule.Host, p.Path)
						continue
					}
					ok := false
					for _, sp := range gw.Spec.Ports {
						ok = ok || (b.Port.Name != "" && sp.Name == b.Port.Name) || (b.Port.Number != 0 && sp.Port == b.Port.Number)
					}
					if !ok || b.Port.Name == "ops" {
						t.Errorf("rule %q goes to gateway port %v, not its http port", rule.Host, b.Port)
					}
				}
			}
		})
	}
}

func (m *manifests) deployment(name string) *appsv1.Deployment {
	for i := range m.Deployments {
		if m.Deployments[i].Name == name {
			return &m.Deployments[i]
		}
	}
	return nil
}

func (m *manifests) service(name string) *corev1.Service {
	for i := range m.Services {
		if m.Services[i].Name == name {
			return &m.Services[i]
		}
	}
	return nil
}

// containerEnv is the environment a Deployment's container gets from its
// ConfigMaps and literal env (Secrets are not in git and are left out).
// serviceEnv is containerEnv of svc's Deployment; false (reported) when it
// cannot be read, false alone when there is none (TestEveryServiceIsDeployed
// reports that).
func (m *manifests) serviceEnv(t *testing.T, svc string) (map[string]string, bool) {
	t.Helper()
	d := m.deployment(svc)
	if d == nil {
		return nil, false
	}
	env, err := m.containerEnv(d)
	if err != nil {
		t.Errorf("%s: %v", svc, err)
		return nil, false
	}
	return env, true
}

func (m *manifests) containerEnv(d *appsv1.Deployment) (map[string]string, error) {
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		return nil, fmt.Errorf("%s: %d containers, want 1", d.Name, n)
	}
	c := d.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, src := range c.EnvFrom {
		if src.ConfigMapRef == nil {
			continue
		}
		var cm *corev1.ConfigMap
		for i := range m.ConfigMaps {
			if m.ConfigMaps[i].Name == src.ConfigMapRef.Name {
				cm = &m.ConfigMaps[i]
			}
		}
		if cm == nil {
			return nil, fmt.Errorf("%s: envFrom names ConfigMap %q, which is not rendered", d.Name, src.ConfigMapRef.Name)
		}
		for k, v := range cm.Data {
			env[src.Prefix+k] = v
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
		}
	}
	return env, nil
}

func containerPort(c *corev1.Container, name string) int {
	for _, p := range c.Ports {
		if p.Name == name {
			return int(p.ContainerPort)
		}
	}
	return 0
}

// resolvePort turns a named or numbered port into the container's port
// number, 0 when the container has no such port.
func resolvePort(c *corev1.Container, p intstr.IntOrString) int {
	if p.Type == intstr.String {
		return containerPort(c, p.StrVal)
	}
	for _, cp := range c.Ports {
		if int(cp.ContainerPort) == p.IntValue() {
			return p.IntValue()
		}
	}
	return 0
}

func ptrString[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

func mapsEqual(a, b map[int]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func keys(m map[int]bool) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
