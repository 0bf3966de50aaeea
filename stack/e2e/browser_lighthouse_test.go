package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"wisp/stack"
	"wisp/stack/client"
)

// lighthouseReport is what the test reads of a Lighthouse JSON report.
type lighthouseReport struct {
	FinalURL   string `json:"finalDisplayedUrl"`
	Categories map[string]struct {
		Score *float64 `json:"score"`
	} `json:"categories"`
	Audits map[string]struct {
		Title        string   `json:"title"`
		Score        *float64 `json:"score"`
		Mode         string   `json:"scoreDisplayMode"`
		NumericValue float64  `json:"numericValue"`
	} `json:"audits"`
}

// runLighthouse audits url with the Lighthouse of the UI's dev tools
// (ui/node_modules, `make test-js`), in Debian's chromium: Lighthouse only
// drives a browser, it downloads none.
func runLighthouse(t *testing.T, url string, desktop bool) lighthouseReport {
	t.Helper()
	root, err := stack.Root()
	if err != nil {
		t.Fatal(err)
	}
	cli := filepath.Join(root, "ui", "node_modules", "lighthouse", "cli", "index.js")
	if _, err := os.Stat(cli); err != nil {
		t.Fatalf("%v: the browser tests need the UI's dev tools: make test-js (npm ci in ui/)", err)
	}
	out := filepath.Join(t.TempDir(), "report.json")
	args := []string{cli, url,
		"--only-categories=accessibility,best-practices,performance",
		"--chrome-flags=--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage",
		"--output=json", "--output-path=" + out, "--quiet"}
	if desktop {
		args = append(args, "--preset=desktop")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Env = append(os.Environ(), "CHROME_PATH="+chromiumPath(t))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("lighthouse %s: %v\n%s", url, err, b)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var r lighthouseReport
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestBrowserLighthouse: Lighthouse scores accessibility and best
// practices 100 on the home page, a banner and the room (phone and
// desktop), with a layout shift under 0.05 and every text resource
// compressed.
func TestBrowserLighthouse(t *testing.T) {
	s := startStack(t, 1, nil)
	gw := s.Gateways()[0]
	id, err := client.New(gw).Create(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		url     string
		desktop bool
	}{
		{"home (phone)", gw + "/", false},
		{"destroyed (phone)", gw + "/?destroyed=true", false},
		// Lighthouse's browser opens the link as the room's first member.
		{"room (phone)", gw + "/room/" + id, false},
		{"room (desktop)", gw + "/room/" + id, true},
	} {
		r := runLighthouse(t, tc.url, tc.desktop)
		scores := map[string]float64{}
		for name, c := range r.Categories {
			if c.Score != nil {
				scores[name] = *c.Score * 100
			}
		}
		cls := r.Audits["cumulative-layout-shift"].NumericValue
		t.Logf("lighthouse %s (%s): accessibility %.0f, best practices %.0f, performance %.0f, CLS %.4f",
			tc.name, r.FinalURL, scores["accessibility"], scores["best-practices"], scores["performance"], cls)
		if !strings.HasPrefix(r.FinalURL, strings.TrimSuffix(tc.url, "?destroyed=true")) {
			t.Errorf("%s: Lighthouse ended on %s", tc.name, r.FinalURL)
		}
		for _, cat := range []string{"accessibility", "best-practices"} {
			if scores[cat] != 100 {
				t.Errorf("%s: Lighthouse %s %.0f, want 100; failing audits: %s", tc.name, cat, scores[cat], failingAudits(r))
			}
		}
		if cls >= 0.05 {
			t.Errorf("%s: Lighthouse CLS %.4f, want < 0.05", tc.name, cls)
		}
		// The page and its scripts and stylesheet come compressed.
		if a := r.Audits["uses-text-compression"]; a.Score == nil || *a.Score < 1 {
			t.Errorf("%s: Lighthouse finds text sent uncompressed (%s: %.0f ms to save)", tc.name, a.Title, a.NumericValue)
		}
	}
}

func failingAudits(r lighthouseReport) string {
	var bad []string
	for id, a := range r.Audits {
		if a.Score != nil && *a.Score < 1 && a.Mode == "binary" {
			bad = append(bad, id+" ("+a.Title+")")
		}
	}
	sort.Strings(bad)
	return strings.Join(bad, ", ")
}
