package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"wisp/platform/service"
)

// TestProdGatewayScalesOnWebSockets: in prod the gateway's HPA scales on
// the live WebSocket connections alone (a pods metric, not CPU); the
// gateway exports that gauge on /metrics; and the custom-metrics adapter
// configuration in the overlay serves it under the name the HPA asks for.
func TestProdGatewayScalesOnWebSockets(t *testing.T) {
	const metric = "wisp_ws_connections"
	m := render(t, filepath.Join("overlays", "prod"))
	var hpa *autoscalingv2.HorizontalPodAutoscaler
	for i := range m.HPAs {
		if m.HPAs[i].Spec.ScaleTargetRef.Name == "gateway" {
			hpa = &m.HPAs[i]
		}
	}
	if hpa == nil {
		t.Fatal("no gateway HPA")
	}
	if len(hpa.Spec.Metrics) != 1 {
		t.Fatalf("gateway HPA scales on %d metrics, want only %s", len(hpa.Spec.Metrics), metric)
	}
	ms := hpa.Spec.Metrics[0]
	if ms.Type != autoscalingv2.PodsMetricSourceType || ms.Pods == nil || ms.Pods.Metric.Name != metric ||
		ms.Pods.Target.Type != autoscalingv2.AverageValueMetricType || ms.Pods.Target.AverageValue == nil ||
		ms.Pods.Target.AverageValue.Value() <= 0 {
		t.Fatalf("gateway HPA metric %+v, want pods %s with an average value", ms, metric)
	}

	src, err := os.ReadFile(filepath.Join(root, "services", "gateway", "internal", "httpapi", "metrics.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), `"`+metric+`"`) {
		t.Fatalf("the gateway no longer exports %s", metric)
	}

	adapter, err := renderDir(filepath.Join("overlays", "prod", "custom-metrics"))
	if err != nil {
		t.Fatal(err)
	}
	if len(adapter.ConfigMaps) != 1 || adapter.ConfigMaps[0].Namespace != "monitoring" || adapter.ConfigMaps[0].Name != "adapter-config" {
		t.Fatalf("custom-metrics renders %d ConfigMaps, want monitoring/adapter-config", len(adapter.ConfigMaps))
	}
	var cfg struct {
		Rules []struct {
			SeriesQuery string `yaml:"seriesQuery"`
			Resources   struct {
				Overrides map[string]struct {
					Resource string `yaml:"resource"`
				} `yaml:"overrides"`
			} `yaml:"resources"`
			Name struct {
				As string `yaml:"as"`
			} `yaml:"name"`
			MetricsQuery string `yaml:"metricsQuery"`
		} `yaml:"rules"`
	}
	if err := yaml.Unmarshal([]byte(adapter.ConfigMaps[0].Data["config.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	served := false
	for _, r := range cfg.Rules {
		if r.Name.As == metric && strings.Contains(r.SeriesQuery, metric) &&
			r.Resources.Overrides["pod"].Resource == "pod" && r.Resources.Overrides["namespace"].Resource == "namespace" &&
			strings.Contains(r.MetricsQuery, "<<.Series>>") {
			served = true
		}
	}
	if !served {
		t.Fatalf("the adapter configuration serves no pods metric %s: %+v", metric, cfg.Rules)
	}
}

// TestProdRunsOnClusters: prod's settings point every service at a NATS
// cluster (a list of servers) and a Redis Cluster (go-redis's cluster
// form), and the services accept them.
func TestProdRunsOnClusters(t *testing.T) {
	m := render(t, filepath.Join("overlays", "prod"))
	d := m.deployment("rooms")
	if d == nil {
		t.Fatal("no rooms Deployment")
	}
	env, err := m.containerEnv(d)
	if err != nil {
		t.Fatal(err)
	}
	if !service.IsClusterURL(env["REDIS_URL"]) || len(strings.Split(env["NATS_URL"], ",")) < 3 {
		t.Fatalf("prod REDIS_URL %q, NATS_URL %q: want Redis Cluster and a NATS cluster", env["REDIS_URL"], env["NATS_URL"])
	}
	e := service.NewEnv(func(k string) string { return env[k] })
	service.LoadConfig("rooms", e, true)
	if err := e.Err(); err != nil {
		t.Fatal(err)
	}
}
