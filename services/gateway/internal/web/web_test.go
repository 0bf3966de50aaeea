package web

import (
	"crypto/sha512"
	"encoding/base64"
	"flag"
	"io/fs"
	"os"
	"path"
	"regexp"
	"strings"
	"testing"
)

func readPage(t *testing.T, name string) string {
	t.Helper()
	b, err := fs.ReadFile(Static, name)
	if err != nil {
		t.Fatalf("%s not embedded: %v", name, err)
	}
	return string(b)
}

// Every asset a page links to must be embedded under the prefix the
// gateway serves, or the page loads without style or script.
func TestPagesReferenceEmbeddedAssets(t *testing.T) {
	ref := regexp.MustCompile(`(?:src|href)="([^"]+)"`)
	for _, page := range []string{HomePage, RoomPage} {
		html := readPage(t, page)
		refs := ref.FindAllStringSubmatch(html, -1)
		if len(refs) == 0 {
			t.Fatalf("%s: no asset references", page)
		}
		for _, m := range refs {
			url := m[1]
			if !strings.HasPrefix(url, AssetPrefix) {
				t.Errorf("%s: %q is not under %s (no external or relative assets)", page, url, AssetPrefix)
				continue
			}
			if _, err := fs.Stat(Static, "static/"+strings.TrimPrefix(url, AssetPrefix)); err != nil {
				t.Errorf("%s: %q is not embedded", page, url)
			}
		}
	}
	// Modules import each other relatively (statically or on first use);
	// those must be embedded too.
	imp := regexp.MustCompile(`(?:from |import\()"\./([^"]+)"`)
	for _, js := range scripts(t) {
		dir := path.Dir(js)
		for _, m := range imp.FindAllStringSubmatch(readPage(t, js), -1) {
			if _, err := fs.Stat(Static, path.Join(dir, m[1])); err != nil {
				t.Errorf("%s imports %q, which is not embedded", js, m[1])
			}
		}
	}
}

// scripts lists every script embedded under static/, vendored ones too.
func scripts(t *testing.T) []string {
	t.Helper()
	var out []string
	err := fs.WalkDir(Static, "static", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".js") || strings.HasSuffix(p, ".mjs")) {
			out = append(out, p)
		}
		return err
	})
	if err != nil || len(out) == 0 {
		t.Fatalf("no scripts embedded: %v", err)
	}
	return out
}

// The CSP has no 'unsafe-inline', so the pages must carry nothing inline.
func TestPagesHaveNothingInline(t *testing.T) {
	inline := map[string]*regexp.Regexp{
		"inline script":  regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]+</script>`),
		"style element":  regexp.MustCompile(`<style[\s>]`),
		"style attr":     regexp.MustCompile(`\sstyle\s*=`),
		"event handler":  regexp.MustCompile(`\son[a-z]+\s*=`),
		"javascript url": regexp.MustCompile(`(?i)javascript:`),
	}
	for _, page := range []string{HomePage, RoomPage} {
		html := readPage(t, page)
		for what, re := range inline {
			if loc := re.FindStringIndex(html); loc != nil {
				t.Errorf("%s: %s at %q", page, what, html[loc[0]:min(loc[1]+20, len(html))])
			}
		}
		for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(html, -1) {
			if !strings.Contains(tag, ` src="`) {
				t.Errorf("%s: script without src: %s", page, tag)
			}
		}
		if !strings.Contains(html, `<html lang="en" dir="ltr">`) || !strings.Contains(html, `name="viewport"`) || !strings.Contains(html, "<title") {
			t.Errorf("%s: missing lang, dir, viewport or title", page)
		}
	}
}

func TestCSP(t *testing.T) {
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "*", "http:", "https:"} {
		if strings.Contains(CSP, bad) {
			t.Errorf("CSP contains %q: %s", bad, CSP)
		}
	}
	for _, want := range []string{
		"default-src 'self'", "script-src 'self'", "style-src 'self'",
		"img-src 'self' data:", "connect-src 'self'", "base-uri 'none'",
		"form-action 'self'", "frame-ancestors 'none'",
	} {
		if !strings.Contains(CSP, want) {
			t.Errorf("CSP lacks %q: %s", want, CSP)
		}
	}
	if strings.ContainsAny(CSP, "\r\n") {
		t.Error("CSP must be a single header line")
	}
}

// The original's user-visible strings, which the browser tests look for:
// in the pages' HTML (the first paint, in English) and in i18n.js, the one
// place the scripts take their text from (ui/test/i18n.test.js checks that
// the two agree).
func TestExactStrings(t *testing.T) {
	want := map[string][]string{
		HomePage: {
			"private_chat", "A private, self-destructing chat room.",
			"ROOM DESTROYED", "All messages were permanently deleted.",
			"ROOM NOT FOUND", "This room may have expired or never existed.",
			"ROOM FULL", "This room is at maximum capacity.",
			"Your Identity", "CREATE SECURE ROOM", `id="lifetime"`, `<option value="" data-minutes="10" selected>`,
		},
		RoomPage: {
			"Room ID", "COPY", "Self-Destruct", "--:--", "💣", "DESTROY NOW",
			"No messages yet, start the conversation.", `placeholder="Type message..."`,
			"SEND", `role="log"`, `role="alert"`, `role="status"`, "<h1", "<ol", "<dialog",
		},
		"static/i18n.js": {`"COPIED!"`, `"offline — reconnecting…"`, `"YOU"`, `"RETRY"`, `stateSending: "sending…"`,
			`stateRead: "read"`, `stateFailed: "failed"`, `"typing…"`},
		"static/room.js":   {"/?destroyed=true", "/api/realtime?", "&after="},
		"static/common.js": {`"chat_username"`, "crypto.getRandomValues"},
	}
	// The two-way protocol (docs/WEBSOCKET.md) as the room page speaks it.
	want[RoomPage] = append(want[RoomPage], `id="presence"`, `id="typing"`, "typing…", `aria-relevant="additions"`)
	want["static/room.js"] = append(want["static/room.js"],
		`type: "send", clientId:`, `type: "typing"`, `type: "read", seq:`, `clientId: entry.clientId`,
		`case "ack":`, `case "error":`, `case "chat.typing":`, `case "chat.read":`, `case "chat.presence":`,
		"ACK_TIMEOUT_MS = 10000")
	want["static/common.js"] = append(want["static/common.js"], "export function newClientId()", "new Uint8Array(16)")
	for file, strs := range want {
		text := readPage(t, file)
		for _, s := range strs {
			if !strings.Contains(text, s) {
				t.Errorf("%s lacks %q", file, s)
			}
		}
	}
}

// The font and the QR library are shipped with their licences.
func TestBundledThirdPartyFilesCarryTheirLicences(t *testing.T) {
	for file, want := range map[string]string{
		"static/fonts/OFL.txt":      "SIL OPEN FONT LICENSE Version 1.1",
		"static/vendor/qrcode.mjs":  "Licensed under the MIT license",
		"static/vendor/LICENSE.txt": "MIT License",
	} {
		if !strings.Contains(readPage(t, file), want) {
			t.Errorf("%s lacks %q", file, want)
		}
	}
}

// Chat text must never reach the DOM as markup.
func TestNoHTMLInjectionSinks(t *testing.T) {
	sink := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function`)
	for _, js := range scripts(t) {
		if loc := sink.FindStringIndex(readPage(t, js)); loc != nil {
			t.Errorf("%s uses an HTML/eval sink", js)
		}
	}
}

var updateSRI = flag.Bool("update-sri", false, "rewrite the pages' integrity attributes from the embedded files")

// sriTag is a tag that loads a script or a stylesheet: a script, a module
// preload, a stylesheet link.
var sriTag = regexp.MustCompile(`<script\b[^>]*>|<link\b[^>]*\brel="(?:modulepreload|stylesheet)"[^>]*>`)

func sriOf(t *testing.T, url string) string {
	t.Helper()
	b, err := fs.ReadFile(Static, "static/"+strings.TrimPrefix(url, AssetPrefix))
	if err != nil {
		t.Fatalf("%s is not embedded", url)
	}
	sum := sha512.Sum384(b)
	return "sha384-" + base64.StdEncoding.EncodeToString(sum[:])
}

// Every script, module preload and stylesheet of a page carries the
// Subresource Integrity hash of the file embedded beside it, and every
// module a page's scripts import (at once or on first use) is preloaded
// with its hash, so that no script runs that is not the one the page
// names. `go test ./internal/web -run SubresourceIntegrity -update-sri`
// rewrites the hashes after a change.
func TestSubresourceIntegrity(t *testing.T) {
	url := regexp.MustCompile(`\b(?:src|href)="([^"]+)"`)
	integrity := regexp.MustCompile(`\s+integrity="[^"]*"`)
	for _, page := range []string{HomePage, RoomPage} {
		html := readPage(t, page)
		preloaded := map[string]bool{}
		var entries []string
		fixed := sriTag.ReplaceAllStringFunc(html, func(tag string) string {
			m := url.FindStringSubmatch(tag)
			if m == nil {
				t.Errorf("%s: %s names no file", page, tag)
				return tag
			}
			want := sriOf(t, m[1])
			if strings.Contains(tag, `rel="modulepreload"`) {
				preloaded[m[1]] = true
			}
			if strings.Contains(tag, `type="module"`) {
				entries = append(entries, m[1])
			}
			if !strings.Contains(tag, ` integrity="`+want+`"`) {
				if !*updateSRI {
					t.Errorf("%s: %s lacks integrity=%q (go test -run SubresourceIntegrity -update-sri)", page, tag, want)
				}
				return strings.Replace(integrity.ReplaceAllString(tag, ""), m[0], m[0]+` integrity="`+want+`"`, 1)
			}
			return tag
		})
		if *updateSRI && fixed != html {
			if err := os.WriteFile(page, []byte(fixed), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		// Everything the entry modules reach must be preloaded (with its hash).
		seen := map[string]bool{}
		var walk func(url string)
		walk = func(url string) {
			if seen[url] {
				return
			}
			seen[url] = true
			imp := regexp.MustCompile(`(?:from |import\()"\./([^"]+)"`)
			for _, m := range imp.FindAllStringSubmatch(readPage(t, "static/"+strings.TrimPrefix(url, AssetPrefix)), -1) {
				dep := path.Join(path.Dir(url), m[1])
				if !preloaded[dep] {
					t.Errorf("%s: %s imports %s, which is not preloaded with its integrity", page, url, dep)
				}
				walk(dep)
			}
		}
		if len(entries) != 1 {
			t.Errorf("%s: %d module entry points, want 1", page, len(entries))
		}
		for _, e := range entries {
			walk(e)
		}
	}
}
