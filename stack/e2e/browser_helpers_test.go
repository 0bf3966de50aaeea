package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"wisp/stack"
	"wisp/testkit"
)

// The browser tests drive Debian's chromium, headless, one process per
// person: separate processes have separate cookie jars and localStorage,
// just like two people on two machines.

const chromiumInstallHint = "the browser tests need Debian's chromium: apt-get install -y chromium"

// chromiumPath finds the browser, failing (never skipping) when it is missing.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	const debian = "/usr/bin/chromium"
	if _, err := os.Stat(debian); err == nil {
		return debian
	}
	t.Fatalf("chromium not found on PATH or at /usr/bin/chromium; %s", chromiumInstallHint)
	return ""
}

// violationBinding is the page-side function (a CDP binding) through which
// the page reports each securitypolicyviolation event; bindings survive
// navigations, so violations on every page of a flow reach the test.
const violationBinding = "__wispReportCSPViolation"

// violationProbe runs in every document before the page's own scripts.
// Scripts added over CDP are not subject to the page's CSP.
const violationProbe = `(() => {
  window.__cspViolations = 0;
  document.addEventListener("securitypolicyviolation", (e) => {
    window.__cspViolations++;
    const report = window.` + violationBinding + `;
    if (typeof report === "function") {
      report(JSON.stringify({
        directive: e.effectiveDirective, blocked: e.blockedURI,
        source: e.sourceFile, line: e.lineNumber, sample: e.sample,
      }));
    }
  }, true);
})();`

// layoutShiftProbe runs in every document before the page's own scripts:
// it adds up the layout shifts not caused by input (window.__cls) and keeps
// what shifted (window.__shifts), from the first paint on.
const layoutShiftProbe = `(() => {
  window.__cls = 0;
  window.__shifts = [];
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        if (e.hadRecentInput) continue;
        window.__cls += e.value;
        window.__shifts.push(e.value.toFixed(4) + " " + (e.sources || []).map((s) =>
          s.node ? (s.node.id ? "#" + s.node.id : s.node.nodeName + "." + (s.node.className || "")) : "?").join(","));
      }
    }).observe({type: "layout-shift", buffered: true});
  } catch (e) {}
})();`

// browser is one headless Chromium process with one tab.
type browser struct {
	t    *testing.T
	name string
	ctx  context.Context     // the tab; no deadline (each action adds its own)
	loc  *time.Location      // the browser's time zone
	out  *testkit.SyncBuffer // chromium's stdout and stderr

	mu         sync.Mutex
	problems   []string // console errors, uncaught exceptions, error log entries
	violations []string // CSP violations the page saw
	requests   []string // "METHOD URL" of every request
	sockets    int      // WebSocket upgrades answered 101
	posts      []string // bodies of the POST requests
	wsSent     []string // text frames the page sent on its WebSockets
	wsReceived []string // text frames the page received
	pageCSP    []string // Content-Security-Policy of each document loaded
}

type viewport struct {
	w, h   int64
	mobile bool
}

var (
	desktop = viewport{w: 1280, h: 800}
	phone   = viewport{w: 390, h: 844, mobile: true}
)

// newBrowsers starts one browser per name at desktop size. They start one
// after the other: on a small machine concurrent starts are slower.
func newBrowsers(t *testing.T, names ...string) []*browser {
	t.Helper()
	return startBrowsers(t, desktop, names...)
}

func startBrowsers(t *testing.T, vp viewport, names ...string) []*browser {
	t.Helper()
	path := chromiumPath(t)
	var bs []*browser
	for _, name := range names {
		b := &browser{t: t, name: name, out: &testkit.SyncBuffer{}, loc: time.Local}
		// TempDir is removed after the browser's cleanup, which waits for the process.
		if err := b.start(path, t.TempDir(), vp); err != nil {
			t.Fatalf("browser %s: %v\nchromium output:\n%s", name, err, chromiumOutput(b.out.String()))
		}
		bs = append(bs, b)
	}
	return bs
}

func (b *browser) start(path, dir string, vp viewport) error {
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("mute-audio", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(int(vp.w), int(vp.h)),
		chromedp.CombinedOutput(b.out),
	)
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithListener(b.listen))
	b.ctx = ctx
	// Cleanups run last-in first-out: check the console, then close the
	// browser (cancelAlloc waits for the process to exit).
	b.t.Cleanup(func() { cancelTab(); cancelAlloc() })
	b.t.Cleanup(b.checkClean)

	// The first action starts the browser and binds it to ctx, so it gets
	// no deadline of its own; a watchdog ends a start that hangs.
	watchdog := time.AfterFunc(30*time.Second, cancelAlloc)
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tab, log.Enable, cdp.Empty{}); err != nil {
			return fmt.Errorf("log.enable: %w", err)
		}
		if _, err := cdp.Call(ctx, tab, runtime.AddBinding, runtime.AddBindingParams{Name: violationBinding}); err != nil {
			return fmt.Errorf("addBinding: %w", err)
		}
		for _, probe := range []string{violationProbe, layoutShiftProbe} {
			if _, err := cdp.Call(ctx, tab, page.AddScriptToEvaluateOnNewDocument,
				page.AddScriptToEvaluateOnNewDocumentParams{Source: probe}); err != nil {
				return fmt.Errorf("addScriptToEvaluateOnNewDocument: %w", err)
			}
		}
		return nil
	}))
	if err == nil {
		// The exact viewport (the window size includes the browser's frame).
		var opts []chromedp.EmulateViewportOption
		if vp.mobile {
			opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch)
		}
		err = chromedp.Do(ctx, chromedp.EmulateViewport(vp.w, vp.h, opts...))
	}
	if !watchdog.Stop() && err == nil {
		err = fmt.Errorf("chromium did not start within 30s")
	}
	return err
}

// listen runs in the tab's event loop: it only records.
func (b *browser) listen(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			b.problems = append(b.problems, "console."+string(ev.Type)+": "+argsText(ev.Args))
		}
	case *runtime.EventExceptionThrown:
		b.problems = append(b.problems, "uncaught exception: "+exceptionText(ev.ExceptionDetails))
	case *log.EventEntryAdded:
		e := ev.Entry
		if e == nil || e.Level != log.EntryLevelError {
			return
		}
		b.problems = append(b.problems, fmt.Sprintf("log entry (%s, error): %s %s", e.Source, e.Text, e.URL))
	case *runtime.EventBindingCalled:
		if ev.Name == violationBinding {
			b.violations = append(b.violations, ev.Payload)
		}
	case *network.EventRequestWillBeSent:
		if ev.Request != nil {
			b.requests = append(b.requests, ev.Request.Method+" "+ev.Request.URL)
			if ev.Request.Method == "POST" {
				var body []byte
				for _, e := range ev.Request.PostDataEntries {
					body = append(body, e.Bytes...)
				}
				b.posts = append(b.posts, string(body))
			}
		}
	case *network.EventResponseReceived:
		if ev.Type == network.ResourceTypeDocument && ev.Response != nil {
			csp := ""
			for k, v := range ev.Response.Headers {
				if strings.EqualFold(k, "Content-Security-Policy") {
					csp = fmt.Sprint(v)
				}
			}
			b.pageCSP = append(b.pageCSP, ev.Response.URL+" -> "+csp)
		}
	case *network.EventWebSocketHandshakeResponseReceived:
		if ev.Response != nil && ev.Response.Status == 101 {
			b.sockets++
		}
	case *network.EventWebSocketFrameSent:
		if ev.Response != nil && ev.Response.Opcode == 1 {
			b.wsSent = append(b.wsSent, string(ev.Response.PayloadData))
		}
	case *network.EventWebSocketFrameReceived:
		if ev.Response != nil && ev.Response.Opcode == 1 {
			b.wsReceived = append(b.wsReceived, string(ev.Response.PayloadData))
		}
	}
}

// chromiumOutput drops chromium's complaints about the D-Bus a container
// does not have.
func chromiumOutput(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" && !strings.Contains(l, "dbus") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func argsText(args []*runtime.RemoteObject) string {
	var parts []string
	for _, a := range args {
		switch {
		case a == nil:
		case len(a.Value) > 0:
			parts = append(parts, string(a.Value))
		case a.Description != "":
			parts = append(parts, a.Description)
		default:
			parts = append(parts, string(a.Type))
		}
	}
	return strings.Join(parts, " ")
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return "?"
	}
	s := d.Text
	if d.Exception != nil && d.Exception.Description != "" {
		s += " " + d.Exception.Description
	}
	return fmt.Sprintf("%s (%s:%d:%d)", s, d.URL, d.LineNumber+1, d.ColumnNumber+1)
}

// drain returns and forgets the problems and CSP violations seen so far.
func (b *browser) drain() (problems, violations []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	problems, violations = b.problems, b.violations
	b.problems, b.violations = nil, nil
	return problems, violations
}

// checkClean fails the test on any console error, uncaught exception,
// error log entry or CSP violation not drained. Nothing is allowed: no test
// provokes a failed request on purpose (a dead room link is a redirect, and
// the pages leave a gone room on chat.destroy or their countdown before
// asking the API), and a "Failed to load resource ... 401" would mean a page
// learned of the room's end only by falling back on the API.
func (b *browser) checkClean() {
	b.t.Helper()
	problems, violations := b.drain()
	for _, p := range problems {
		b.t.Errorf("browser %s: %s", b.name, p)
	}
	for _, v := range violations {
		b.t.Errorf("browser %s: CSP violation %s", b.name, v)
	}
	if b.t.Failed() {
		if out := chromiumOutput(b.out.String()); out != "" {
			b.t.Logf("browser %s: chromium output:\n%s", b.name, out)
		}
	}
}

// requestCount counts requests whose "METHOD URL" contains every part.
func (b *browser) requestCount(parts ...string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
outer:
	for _, r := range b.requests {
		for _, p := range parts {
			if !strings.Contains(r, p) {
				continue outer
			}
		}
		n++
	}
	return n
}

func (b *browser) requestLog() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.requests...)
}

func (b *browser) documentCSPs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.pageCSP...)
}

// framesSent returns the text frames the page sent whose JSON "type" is typ.
func (b *browser) framesSent(typ string) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	return framesOf(b.wsSent, "type", typ)
}

// framesReceived returns the text frames the page received whose "event" is event.
func (b *browser) framesReceived(event string) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	return framesOf(b.wsReceived, "event", event)
}

// postBodies returns the bodies of the POST requests the page made.
func (b *browser) postBodies() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.posts...)
}

// withoutWebSockets makes every later document of the tab one in which a
// WebSocket cannot be opened (the constructor throws, as it does when a
// browser or an extension forbids it).
func (b *browser) withoutWebSockets() {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.WebSocket = class { constructor() { throw new DOMException("WebSockets are off in this test", "SecurityError"); } };`,
	}); err != nil {
		b.fail("turn WebSockets off: %v", err)
	}
}

func (b *browser) receivedFrames() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.wsReceived...)
}

// framesOf decodes the frames whose key is value (every frame when key is "").
func framesOf(frames []string, key, value string) []map[string]any {
	var out []map[string]any
	for _, f := range frames {
		var m map[string]any
		if json.Unmarshal([]byte(f), &m) == nil && (key == "" || m[key] == value) {
			out = append(out, m)
		}
	}
	return out
}

func (b *browser) socketCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sockets
}

// fail saves a screenshot of the page for the post-mortem and stops the test.
func (b *browser) fail(format string, args ...any) {
	b.t.Helper()
	msg := fmt.Sprintf(format, args...)
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	href, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`))
	if png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err == nil {
		if dir, err := screenshotDir(); err == nil {
			name := filepath.Join(dir, "failed-"+safeName(b.t.Name())+"-"+b.name+".png")
			if os.WriteFile(name, png, 0o644) == nil {
				msg += "\n(screenshot: " + name + ")"
			}
		}
	}
	b.t.Fatalf("browser %s at %s: %s", b.name, href, msg)
}

// do runs actions with a deadline.
func (b *browser) do(within time.Duration, what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, within)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail("%s: %v", what, err)
	}
}

// navigate opens url and waits for its load event.
func (b *browser) navigate(url string) {
	b.t.Helper()
	b.do(20*time.Second, "open "+url, chromedp.Navigate(url))
}

// evalJS evaluates expr once in the page.
func evalJS[T any](b *browser, expr string, opts ...chromedp.EvaluateOption) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		b.fail("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS evaluates expr until it yields a truthy value, and returns that
// value decoded into T. It polls from Go, so it survives navigations (the
// page's own Poll dies with its document): an evaluation that fails because
// the page is being replaced counts as "not yet".
func waitJS[T any](b *browser, within time.Duration, what, expr string) T {
	b.t.Helper()
	js := `(() => { try { const v = (` + expr + `); return v ? JSON.stringify(v) : ""; }` +
		` catch (e) { return "\u0000" + String(e); } })()`
	deadline := time.Now().Add(within)
	var last string
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		cancel()
		switch {
		case err != nil:
			last = err.Error()
		case strings.HasPrefix(s, "\x00"):
			last = s[1:]
		case s != "":
			var v T
			if err := json.Unmarshal([]byte(s), &v); err != nil {
				b.fail("%s: decode %s: %v", what, s, err)
			}
			return v
		default:
			last = "falsy"
		}
		if time.Now().After(deadline) {
			b.fail("%s: not within %v (last: %s)", what, within, last)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

// waitGo polls a condition on what the browser recorded.
func (b *browser) waitGo(within time.Duration, what string, cond func() bool) {
	b.t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			b.fail("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// ---------- Pages ----------

var usernameRE = regexp.MustCompile(`^anonymous-[a-z]+-[A-Za-z0-9_-]{5}$`)

type homeState struct {
	Path     string   `json:"path"`
	Search   string   `json:"search"`
	Brand    string   `json:"brand"`
	Label    string   `json:"label"`
	Username string   `json:"username"`
	Stored   string   `json:"stored"`
	Create   string   `json:"create"`
	Banners  []string `json:"banners"` // ids of the visible banners
	Title    string   `json:"title"`   // of the first visible banner
	Text     string   `json:"text"`
}

// homeJS is truthy once the home page has run its script (the identity is
// filled in and CREATE is enabled).
const homeJS = `location.pathname === "/" && document.getElementById("username")?.value &&
  !document.getElementById("create").disabled && (() => {
  const $ = (id) => document.getElementById(id);
  const shown = [...document.querySelectorAll(".banner")].filter((e) => e.checkVisibility());
  return {
    path: location.pathname, search: location.search,
    brand: document.querySelector("h1").textContent,
    label: document.querySelector("label[for=username]").textContent,
    username: $("username").value, stored: localStorage.getItem("chat_username"),
    create: $("create").textContent,
    banners: shown.map((e) => e.id),
    title: shown[0]?.querySelector(".banner-title").textContent ?? "",
    text: shown[0]?.querySelector(".banner-text").textContent ?? "",
  };
})()`

// waitHome waits until the browser shows the home page with exactly the
// given banner ("" for none) and checks its wording.
func waitHome(b *browser, within time.Duration, banner string) homeState {
	b.t.Helper()
	expr := homeJS
	if banner != "" {
		expr = `document.getElementById(` + strconv.Quote(banner) + `)?.checkVisibility() && ` + homeJS
	}
	h := waitJS[homeState](b, within, "home page with banner "+strconv.Quote(banner), expr)
	want := map[string][2]string{
		"banner-destroyed": {"ROOM DESTROYED", "All messages were permanently deleted."},
		"banner-not-found": {"ROOM NOT FOUND", "This room may have expired or never existed."},
		"banner-full":      {"ROOM FULL", "This room is at maximum capacity."},
	}
	switch {
	case banner == "" && len(h.Banners) != 0:
		b.fail("home page shows banners %v, want none", h.Banners)
	case banner != "" && (len(h.Banners) != 1 || h.Title != want[banner][0] || h.Text != want[banner][1]):
		b.fail("home page banners %v %q / %q, want only %s %q / %q", h.Banners, h.Title, h.Text, banner, want[banner][0], want[banner][1])
	}
	if h.Search != "" {
		b.fail("banner flags left in the address bar: %q", h.Search)
	}
	return h
}

type room struct{ id, url string }

var roomPathRE = `/^\/room\/[A-Za-z0-9_-]{21,}$/`

// createRoom opens the home page and presses CREATE SECURE ROOM.
func createRoom(b *browser, gw string) room {
	b.t.Helper()
	b.navigate(gw + "/")
	waitHome(b, 10*time.Second, "")
	return clickCreate(b, gw)
}

// clickCreate presses CREATE SECURE ROOM on the home page already shown.
func clickCreate(b *browser, gw string) room {
	b.t.Helper()
	sockets := b.socketCount()
	b.do(10*time.Second, "click CREATE SECURE ROOM", chromedp.Click(chromedp.ID("create")))
	id := waitJS[string](b, 10*time.Second, "the room page after CREATE",
		roomPathRE+`.test(location.pathname) && location.pathname.slice(6)`)
	r := room{id: id, url: gw + "/room/" + id}
	waitRoomReady(b, r, sockets)
	return r
}

// joinRoom opens the room's link and waits until the room is live.
func joinRoom(b *browser, r room) {
	b.t.Helper()
	sockets := b.socketCount()
	b.navigate(r.url)
	waitRoomReady(b, r, sockets)
}

// waitRoomReady waits for the room page to have loaded its messages, shown
// its countdown and opened its WebSocket (one more than socketsBefore).
func waitRoomReady(b *browser, r room, socketsBefore int) {
	b.t.Helper()
	shown := waitJS[string](b, 10*time.Second, "room page loaded",
		`location.pathname === "/room/`+r.id+`" && !document.getElementById("messages").hasAttribute("aria-busy") &&
		 /^\d+:\d\d$/.test(document.getElementById("countdown").textContent) && document.getElementById("room-id").textContent`)
	if shown != r.id {
		b.fail("room id shown %q, want %q", shown, r.id)
	}
	b.waitGo(10*time.Second, "the room's WebSocket open", func() bool { return b.socketCount() > socketsBefore })
}

type shownMessage struct {
	Sender   string `json:"sender"`
	You      bool   `json:"you"`
	Time     string `json:"time"`
	DateTime string `json:"datetime"`
	Text     string `json:"text"`
	State    string `json:"state"`  // own messages: sending, sent, read or failed; "" for the peer's
	Status   string `json:"status"` // the status text shown
	Retry    bool   `json:"retry"`  // a RETRY button is shown
}

const messagesJS = `[...document.querySelectorAll("#messages .msg")].map((m) => ({
  sender: m.querySelector(".msg-sender").textContent,
  you: m.querySelector(".msg-sender").classList.contains("is-you"),
  time: m.querySelector(".msg-time").textContent,
  datetime: m.querySelector(".msg-time").dateTime,
  text: m.querySelector(".msg-text").textContent,
  state: m.dataset.state ?? "",
  status: m.querySelector(".msg-status")?.textContent ?? "",
  retry: !!m.querySelector(".msg-retry")?.checkVisibility(),
}))`

// waitMessages waits until the list shows at least n messages.
func waitMessages(b *browser, n int) []shownMessage {
	b.t.Helper()
	return waitJS[[]shownMessage](b, 10*time.Second, fmt.Sprintf("%d messages shown", n),
		`(() => { const l = `+messagesJS+`; return l.length >= `+strconv.Itoa(n)+` && l; })()`)
}

// sendWithEnter types text into "Type message..." and presses Enter.
func sendWithEnter(b *browser, text string) {
	b.t.Helper()
	b.do(10*time.Second, "type and press Enter", chromedp.SendKeys(chromedp.ID("message-input"), text+"\n"))
	waitSent(b)
}

// sendWithButton types text and clicks SEND.
func sendWithButton(b *browser, text string) {
	b.t.Helper()
	b.do(10*time.Second, "type and click SEND",
		chromedp.SendKeys(chromedp.ID("message-input"), text),
		chromedp.WaitEnabled(chromedp.ID("send")),
		chromedp.Click(chromedp.ID("send")),
	)
	waitSent(b)
}

// destroyNow presses DESTROY NOW and confirms in its dialog.
func destroyNow(b *browser) {
	b.t.Helper()
	b.do(5*time.Second, "click DESTROY NOW", chromedp.Click(chromedp.ID("destroy")))
	waitJS[bool](b, 5*time.Second, "the confirmation dialog open", `document.getElementById("confirm-destroy").open`)
	b.do(5*time.Second, "confirm DESTROY", chromedp.Click(chromedp.ID("confirm-yes")))
}

// waitSent waits for the input to be cleared and every own message to show
// sent (or read): the server has stored them all.
func waitSent(b *browser) {
	b.t.Helper()
	waitJS[bool](b, 10*time.Second, "the input cleared and every own message sent",
		`document.getElementById("message-input").value === "" && document.getElementById("send").disabled &&
		 document.getElementById("room-error").textContent === "" &&
		 (() => { const own = [...document.querySelectorAll("#messages .msg.is-own")];
		   return own.length > 0 && own.every((m) => m.dataset.state === "sent" || m.dataset.state === "read"); })()`)
}

// waitPresence waits until the page shows the peer as state ("online" or "offline").
func waitPresence(b *browser, state string) {
	b.t.Helper()
	waitJS[bool](b, 10*time.Second, "the peer shown "+state,
		`document.getElementById("presence").dataset.state === `+strconv.Quote(state)+
			` && document.getElementById("presence-text").textContent === `+strconv.Quote(state))
}

// recordStates makes the page keep, per message text, every state its own
// message showed, in order (window.__states), from the moment it is added,
// and count the message nodes ever added to the list (window.__added).
func recordStates(b *browser) {
	b.t.Helper()
	evalJS[chromedp.Void](b, `(() => {
	  window.__states = {};
	  window.__added = 0;
	  const note = (m) => {
	    if (!m.classList || !m.classList.contains("msg") || !m.dataset.state) return;
	    const t = m.querySelector(".msg-text").textContent, l = (window.__states[t] ||= []);
	    if (l[l.length - 1] !== m.dataset.state) l.push(m.dataset.state);
	  };
	  new MutationObserver((muts) => {
	    for (const mu of muts) {
	      if (mu.type === "attributes") note(mu.target);
	      else for (const n of mu.addedNodes) { if (n.classList?.contains("msg")) window.__added++; note(n); }
	    }
	  }).observe(document.getElementById("messages"), {subtree: true, childList: true, attributes: true, attributeFilter: ["data-state"]});
	})()`)
}

// recordAnnouncements makes the page keep every text its polite announcer
// says (window.__said); announced returns them.
func recordAnnouncements(b *browser) {
	b.t.Helper()
	evalJS[chromedp.Void](b, `(() => {
	  window.__said = [];
	  const a = document.getElementById("announcer");
	  new MutationObserver(() => { if (a.textContent) window.__said.push(a.textContent); })
	    .observe(a, {childList: true, characterData: true, subtree: true});
	})()`)
}

func announced(b *browser) []string {
	b.t.Helper()
	return evalJS[[]string](b, `window.__said`)
}

// waitAnnounced waits until the announcer has said something containing part.
func waitAnnounced(b *browser, part string) {
	b.t.Helper()
	waitJS[bool](b, 5*time.Second, "the announcer saying "+strconv.Quote(part),
		`window.__said.some((s) => s.includes(`+strconv.Quote(part)+`))`)
}

// closeTab closes the browser's tab, as a person closing it would.
func (b *browser) closeTab() {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if _, err := chromedp.Call(ctx, page.Close, cdp.Empty{}); err != nil {
		b.fail("close the tab: %v", err)
	}
}

// ---------- Screenshots ----------

func screenshotDir() (string, error) {
	root, err := stack.Root()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, "artifacts", "screenshots")
	return dir, os.MkdirAll(dir, 0o755)
}

// screenshot saves a full-page PNG as artifacts/screenshots/<name>.png.
func (b *browser) screenshot(name string) string {
	b.t.Helper()
	dir, err := screenshotDir()
	if err != nil {
		b.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.fail("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
	return path
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' {
			return '_'
		}
		return r
	}, s)
}

// setTimezone makes the tab's local time that of tz (an IANA name).
func (b *browser) setTimezone(tz string) {
	b.t.Helper()
	loc, err := time.LoadLocation(tz)
	if err != nil {
		b.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	if _, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: tz}); err != nil {
		b.fail("time zone %s: %v", tz, err)
	}
	b.loc = loc
}

// grantClipboard lets the page read the clipboard, to check what COPY put there.
func (b *browser) grantClipboard(origin string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		_, err := chromedp.CallBrowser(ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: name},
			Setting:    cdpbrowser.PermissionSettingGranted,
			Origin:     origin,
		})
		if err != nil {
			b.fail("grant %s: %v", name, err)
		}
	}
}
