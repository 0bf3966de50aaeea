package web

import (
	"io/fs"
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
	// Modules import each other relatively; those must be embedded too.
	imp := regexp.MustCompile(`from "\./([^"]+)"`)
	for _, js := range []string{"static/home.js", "static/room.js"} {
		for _, m := range imp.FindAllStringSubmatch(readPage(t, js), -1) {
			if _, err := fs.Stat(Static, "static/"+m[1]); err != nil {
				t.Errorf("%s imports %q, which is not embedded", js, m[1])
			}
		}
	}
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
		if !strings.Contains(html, `<html lang="en">`) || !strings.Contains(html, `name="viewport"`) || !strings.Contains(html, "<title>") {
			t.Errorf("%s: missing lang, viewport or title", page)
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

// The original's user-visible strings, which the browser tests look for.
func TestExactStrings(t *testing.T) {
	want := map[string][]string{
		HomePage: {
			"private_chat", "A private, self-destructing chat room.",
			"ROOM DESTROYED", "All messages were permanently deleted.",
			"ROOM NOT FOUND", "This room may have expired or never existed.",
			"ROOM FULL", "This room is at maximum capacity.",
			"Your Identity", "CREATE SECURE ROOM",
		},
		RoomPage: {
			"Room ID", "COPY", "Self-Destruct", "--:--", "💣", "DESTROY NOW",
			"No messages yet, start the conversation.", `placeholder="Type message..."`,
			`maxlength="1000"`, "SEND", `role="log"`, `role="alert"`, `role="status"`,
		},
		"static/room.js":   {`"COPIED!"`, "offline — reconnecting…", `"YOU"`, "/?destroyed=true", "/api/realtime?", "&after="},
		"static/common.js": {`"chat_username"`, "crypto.getRandomValues"},
	}
	for file, strs := range want {
		text := readPage(t, file)
		for _, s := range strs {
			if !strings.Contains(text, s) {
				t.Errorf("%s lacks %q", file, s)
			}
		}
	}
}

// Chat text must never reach the DOM as markup.
func TestNoHTMLInjectionSinks(t *testing.T) {
	sink := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function`)
	entries, err := fs.ReadDir(Static, "static")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".js") {
			continue
		}
		if loc := sink.FindStringIndex(readPage(t, "static/"+e.Name())); loc != nil {
			t.Errorf("%s uses an HTML/eval sink", e.Name())
		}
	}
}
