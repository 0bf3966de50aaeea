package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"wisp/stack"
)

// Accessibility, keyboard-only use, layout stability, the offline state and
// the chat features people expect (issue 15), in the real browser. axe-core
// and jsQR come from the UI's dev tools (ui/node_modules, `make test-js`
// installs them) and are put into the page by the test over CDP: the
// product's CSP stays as strict as ever and the product never serves them.

// uiTool reads a file of the UI's dev tools, failing (never skipping) when
// they are not installed.
func uiTool(t *testing.T, rel string) string {
	t.Helper()
	root, err := stack.Root()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "ui", "node_modules", rel))
	if err != nil {
		t.Fatalf("%v: the browser tests need the UI's dev tools: make test-js (npm ci in ui/)", err)
	}
	return string(b)
}

var (
	axeOnce sync.Once
	axeSrc  string
)

// axeTags are the rule sets the pages must pass: WCAG 2.0-2.2 A and AA,
// and axe's best practices.
var axeTags = []string{"wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa", "best-practice"}

type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// axeRun runs axe-core on b's page and returns its violations.
func axeRun(t *testing.T, b *browser) []axeViolation {
	t.Helper()
	axeOnce.Do(func() { axeSrc = uiTool(t, "axe-core/axe.min.js") })
	if axeSrc == "" {
		t.Fatal("axe-core not loaded")
	}
	tags := `["` + strings.Join(axeTags, `","`) + `"]`
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`typeof axe === "object" || (() => { `+axeSrc+`
	})()`)); err != nil {
		b.fail("inject axe-core: %v", err)
	}
	v, err := chromedp.Run(ctx, chromedp.Evaluate[[]axeViolation](`axe.run(document, {
	    runOnly: {type: "tag", values: `+tags+`}, resultTypes: ["violations"]})
	  .then((r) => r.violations.map((v) => ({id: v.id, impact: v.impact || "", help: v.help,
	    nodes: v.nodes.slice(0, 6).map((n) => n.target.join(" ") + " — " + (n.failureSummary || "").replace(/\s+/g, " "))})))`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		b.fail("axe.run: %v", err)
	}
	return v
}

// checkAxe fails the test for every axe violation on b's page and logs the count.
func checkAxe(t *testing.T, b *browser, page string) {
	t.Helper()
	vs := axeRun(t, b)
	t.Logf("axe %s (%s): %d violations", page, b.name, len(vs))
	for _, v := range vs {
		t.Errorf("axe %s (%s): %s [%s] %s\n\t%s", page, b.name, v.ID, v.Impact, v.Help, strings.Join(v.Nodes, "\n\t"))
	}
}

// checkCLS fails when the layout shifts of b's document add up to 0.05 or
// more (the sum of every shift not caused by input: stricter than CLS's
// worst session window); it returns the figure.
func checkCLS(t *testing.T, b *browser, page string) float64 {
	t.Helper()
	type shifts struct {
		CLS    float64  `json:"cls"`
		Shifts []string `json:"shifts"`
	}
	s := evalJS[shifts](b, `({cls: window.__cls ?? -1, shifts: window.__shifts ?? []})`)
	t.Logf("CLS %s (%s): %.4f %v", page, b.name, s.CLS, s.Shifts)
	if s.CLS < 0 {
		t.Errorf("%s (%s): the layout-shift probe did not run", page, b.name)
	}
	if s.CLS >= 0.05 {
		t.Errorf("%s (%s): layout shift %.4f, want < 0.05: %v", page, b.name, s.CLS, s.Shifts)
	}
	return s.CLS
}

// settle gives a page's late work (countdown, socket, fonts) a moment to
// happen, so a shift it causes is counted.
func settle(b *browser) {
	b.t.Helper()
	waitJS[bool](b, 5*time.Second, "fonts loaded", `document.fonts.status === "loaded"`)
	time.Sleep(1200 * time.Millisecond) // past the next countdown tick and the connecting notice's 2 s mostly
}

// TestBrowserAccessibility: axe-core finds no violation (WCAG 2.2 A/AA and
// best practices) and the layout shifts less than 0.05 on every page: home,
// empty room, chat on desktop and on a phone, both dialogs, room full,
// destroyed and not found.
func TestBrowserAccessibility(t *testing.T) {
	s := startStack(t, 1, nil)
	gw := s.Gateways()[0]
	bs := newBrowsers(t, "A", "C")
	a, c := bs[0], bs[1]
	p := startBrowsers(t, phone, "phone")[0]

	a.navigate(gw + "/")
	waitHome(a, 10*time.Second, "")
	settle(a)
	checkAxe(t, a, "home")
	checkCLS(t, a, "home")

	r := clickCreate(a, gw)
	waitJS[bool](a, 5*time.Second, "empty state", `document.getElementById("empty").checkVisibility()`)
	settle(a)
	checkAxe(t, a, "empty room")
	checkCLS(t, a, "empty room")

	joinRoom(p, r)
	sendWithEnter(a, "hello! this room self-destructs, so say what you need to say.")
	sendWithButton(p, "got it — a longer line to see how wrapping looks on a narrow phone screen")
	sendWithEnter(a, "👍 see you")
	waitMessages(a, 3)
	waitMessages(p, 3)
	settle(p)
	checkAxe(t, a, "chat (desktop)")
	checkAxe(t, p, "chat (phone)")
	checkCLS(t, a, "chat (desktop)")
	checkCLS(t, p, "chat (phone)")
	checkFits(t, p)

	a.do(5*time.Second, "open the confirmation", chromedp.Click(chromedp.ID("destroy")))
	waitJS[bool](a, 5*time.Second, "confirmation open", `document.getElementById("confirm-destroy").open`)
	checkAxe(t, a, "destroy confirmation")
	a.screenshot("room-confirm-destroy-desktop")
	a.do(5*time.Second, "cancel", chromedp.Click(chromedp.ID("confirm-cancel")))
	a.do(5*time.Second, "open the QR code", chromedp.Click(chromedp.ID("show-qr")))
	waitJS[bool](a, 5*time.Second, "QR dialog open with its code", `document.getElementById("qr-dialog").open && !!document.querySelector("#qr-frame svg")`)
	checkAxe(t, a, "QR dialog")
	a.screenshot("room-qr-desktop")
	a.do(5*time.Second, "close the QR code", chromedp.Click(chromedp.ID("qr-close")))

	c.navigate(r.url)
	waitHome(c, 10*time.Second, "banner-full")
	settle(c)
	checkAxe(t, c, "room full")
	checkCLS(t, c, "room full")

	destroyNow(p)
	waitHome(p, 10*time.Second, "banner-destroyed")
	waitHome(a, 10*time.Second, "banner-destroyed")
	settle(a)
	checkAxe(t, a, "destroyed")
	checkCLS(t, a, "destroyed")
	checkAxe(t, p, "destroyed (phone)")
	checkCLS(t, p, "destroyed (phone)")

	a.navigate(r.url)
	waitHome(a, 10*time.Second, "banner-not-found")
	settle(a)
	checkAxe(t, a, "not found")
	checkCLS(t, a, "not found")

	// The detector works: an image without a text alternative is reported.
	evalJS[chromedp.Void](a, `document.querySelector("main").append(Object.assign(document.createElement("img"),
	  {src: "data:image/gif;base64,R0lGODlhAQABAAAAACw=", width: 10, height: 10}))`)
	if vs := axeRun(t, a); len(vs) != 1 || vs[0].ID != "image-alt" {
		t.Errorf("axe on a page with an image without alt: %+v, want one image-alt violation", vs)
	}
}

// key presses one key (kb names, e.g. kb.Tab) with modifiers.
func (b *browser) key(k string, mods ...chromedp.Modifier) {
	b.t.Helper()
	b.do(5*time.Second, "press "+strconv.Quote(k), chromedp.KeyEvent(k, chromedp.KeyModifiers(mods...)))
}

// focused names the focused element: its id, else its tag.
func focused(b *browser) string {
	b.t.Helper()
	return evalJS[string](b, `document.activeElement?.id || document.activeElement?.tagName || ""`)
}

// tabTo presses Tab until the element with id has the focus (at most 20 times).
func tabTo(b *browser, id string) {
	b.t.Helper()
	for range 20 {
		if focused(b) == id {
			return
		}
		b.key(kb.Tab)
	}
	b.fail("Tab never reached #%s (focus on %s)", id, focused(b))
}

// TestBrowserKeyboardOnly plays the whole product without a pointer: the
// lifetime chosen with the arrow keys (1 min), CREATE with Enter, a message
// with Enter and one of two lines with Shift+Enter, every control reached
// with Tab in a sensible order, COPY, the QR code (which reads back as the
// link) closed with Esc, DESTROY NOW confirmed; home, the banner has the
// focus. The server bounds the lifetime: 59 s and 3601 s are refused.
func TestBrowserKeyboardOnly(t *testing.T) {
	s := startStack(t, 1, nil)
	gw := s.Gateways()[0]
	bs := newBrowsers(t, "A", "B")
	a, b := bs[0], bs[1]

	a.navigate(gw + "/")
	waitHome(a, 10*time.Second, "")
	type created struct {
		Status int    `json:"status"`
		Body   string `json:"body"`
	}
	for ttl, want := range map[string]int{"59": 400, "3601": 400, "3600": 200, `"600"`: 400} {
		got := evalJS[created](a, `fetch("/api/room/create", {method: "POST", headers: {"Content-Type": "application/json"},
		  body: JSON.stringify({ttl: `+ttl+`})}).then(async (r) => ({status: r.status, body: await r.text()}))`, chromedp.EvalAwaitPromise)
		if got.Status != want {
			t.Errorf("create with ttl %s: %d %s, want %d", ttl, got.Status, got.Body, want)
		}
		if want == 400 && !strings.Contains(got.Body, "ttl must be") {
			t.Errorf("create with ttl %s: %s, want an error naming ttl", ttl, got.Body)
		}
	}

	// The refused creates are in the console, as a failed request always is.
	problems, _ := a.drain()
	for _, x := range problems {
		if !strings.Contains(x, "status of 400") {
			t.Errorf("A: %s", x)
		}
	}

	tabTo(a, "lifetime")
	a.key(kb.ArrowUp)
	a.key(kb.ArrowUp)
	if v := evalJS[string](a, `document.getElementById("lifetime").value + " " + document.getElementById("lifetime").selectedOptions[0].textContent`); v != "60 1 min" {
		t.Fatalf("lifetime after two ArrowUp: %q, want 60 (1 min)", v)
	}
	tabTo(a, "create")
	sockets := a.socketCount()
	a.key(kb.Enter)
	id := waitJS[string](a, 10*time.Second, "the room page after Enter on CREATE", roomPathRE+`.test(location.pathname) && location.pathname.slice(6)`)
	r := room{id: id, url: gw + "/room/" + id}
	waitRoomReady(a, r, sockets)
	cd := waitJS[countdownState](a, 5*time.Second, "countdown", countdownJS)
	if left := countdownSeconds(t, cd.Text); left > 60 || left < 50 {
		t.Errorf("countdown %s in a room created for 1 min", cd.Text)
	}
	if f := focused(a); f != "message-input" {
		t.Errorf("the room page opens with the focus on %q, want the message box", f)
	}
	// The room is end-to-end: messages go once the other member's key is here.
	joinRoom(b, r)
	waitJS[bool](a, 10*time.Second, "the other key", `document.getElementById("e2e").dataset.state === "ready"`)

	// Enter sends; Shift+Enter starts a new line.
	a.do(10*time.Second, "type and press Enter", chromedp.SendKeys(chromedp.ID("message-input"), "by keyboard"), chromedp.KeyEvent(kb.Enter))
	waitSent(a)
	a.do(10*time.Second, "type line one", chromedp.SendKeys(chromedp.ID("message-input"), "line one"))
	a.key(kb.Enter, chromedp.ModifierShift)
	a.do(10*time.Second, "type line two and press Enter", chromedp.SendKeys(chromedp.ID("message-input"), "line two"), chromedp.KeyEvent(kb.Enter))
	waitSent(a)
	if got := waitMessages(a, 2); got[1].Text != "line one\nline two" || got[1].Sender != "YOU" {
		t.Errorf("after Shift+Enter the page shows %+v, want one message of two lines", got[1])
	}

	// Tab order: the header's controls left to right, then the messages, the message box.
	evalJS[chromedp.Void](a, `document.activeElement.blur()`)
	var order []string
	for range 12 {
		a.key(kb.Tab)
		f := focused(a)
		if f == "BODY" && len(order) == 0 {
			continue // the first Tab may land on the document itself
		}
		order = append(order, f)
		if f == "message-input" {
			break
		}
	}
	want := []string{"copy", "show-qr", "notify", "destroy", "messages", "message-input"}
	if strings.Join(order, " ") != strings.Join(want, " ") {
		t.Errorf("Tab goes %v, want %v (SEND is disabled while the box is empty)", order, want)
	}

	// COPY and the QR code, from the keyboard.
	a.grantClipboard(gw)
	tabTo(a, "copy")
	a.key(kb.Enter)
	waitJS[bool](a, 5*time.Second, "COPIED!", `document.getElementById("copy").textContent === "COPIED!"`)
	tabTo(a, "show-qr")
	a.key(kb.Enter)
	waitJS[bool](a, 5*time.Second, "the QR dialog open, CLOSE focused",
		`document.getElementById("qr-dialog").open && document.activeElement.id === "qr-close" && !!document.querySelector("#qr-frame svg")`)
	if got := decodeQR(t, a); !shareLinkRE(r).MatchString(got) {
		t.Errorf("the QR code reads %q, want the room's link %q with #fp=<fingerprint>", got, r.url)
	}
	a.key(kb.Escape)
	waitJS[bool](a, 5*time.Second, "QR closed, focus back on QR", `!document.getElementById("qr-dialog").open && document.activeElement.id === "show-qr"`)
	for _, req := range a.requestLog() {
		if !strings.Contains(req, gw) && !strings.HasPrefix(req, "GET data:") {
			t.Errorf("a request left the site: %s", req)
		}
	}

	// DESTROY NOW: CANCEL has the focus; Tab to DESTROY, Enter.
	tabTo(a, "destroy")
	a.key(kb.Enter)
	waitJS[bool](a, 5*time.Second, "confirmation with CANCEL focused", `document.activeElement.id === "confirm-cancel"`)
	a.key(kb.Tab)
	if f := focused(a); f != "confirm-yes" {
		t.Fatalf("Tab from CANCEL went to %q", f)
	}
	a.key(kb.Enter)
	waitHome(a, 10*time.Second, "banner-destroyed")
	if f, title := focused(a), evalJS[string](a, `document.title`); f != "banner-destroyed" || title != "ROOM DESTROYED · private_chat" {
		t.Errorf("home after the destroy: focus on %q, title %q; want the banner focused and named in the title", f, title)
	}
}

// decodeQR reads the QR code the page shows with jsQR, drawn from its SVG
// path on a canvas in the page.
func decodeQR(t *testing.T, b *browser) string {
	t.Helper()
	src := uiTool(t, "jsqr/dist/jsQR.js")
	evalJS[chromedp.Void](b, `(() => { const module = undefined, exports = undefined, define = undefined; `+src+` })()`)
	return evalJS[string](b, `(() => {
	  const svg = document.querySelector("#qr-frame svg"), n = svg.viewBox.baseVal.width, scale = 6;
	  const c = document.createElement("canvas"); c.width = c.height = n * scale;
	  const g = c.getContext("2d");
	  g.fillStyle = "#fff"; g.fillRect(0, 0, c.width, c.height);
	  g.scale(scale, scale); g.fillStyle = "#000"; g.fill(new Path2D(svg.querySelector("path").getAttribute("d")));
	  const img = g.getImageData(0, 0, c.width, c.height);
	  const code = window.jsQR(img.data, img.width, img.height);
	  return code ? code.data : "";
	})()`)
}

// TestBrowserExpiryWarnings: the page says "One minute left" when the
// countdown crosses 1:00 and "10 seconds left" at 0:10; at the end the home
// page's banner has the focus and the title names it.
func TestBrowserExpiryWarnings(t *testing.T) {
	for _, tc := range []struct {
		ttl  time.Duration
		says string
	}{
		{62 * time.Second, "One minute left"},
		{13 * time.Second, "10 seconds left"},
	} {
		t.Run(tc.ttl.String(), func(t *testing.T) {
			s := startStack(t, 1, map[string]string{"ROOM_TTL": tc.ttl.String()})
			gw := s.Gateways()[0]
			a := newBrowsers(t, "A")[0]
			created := time.Now()
			createRoom(a, gw)
			recordAnnouncements(a)
			waitJS[bool](a, 8*time.Second, "the announcer saying "+strconv.Quote(tc.says),
				`window.__said.some((s) => s.includes(`+strconv.Quote(tc.says)+`))`)
			at := time.Since(created)
			t.Logf("%q said %v after the room was created (TTL %v); announcer: %q", tc.says, at.Round(100*time.Millisecond), tc.ttl, announced(a))
			if n := evalJS[int](a, `window.__said.filter((s) => s.includes(`+strconv.Quote(tc.says)+`)).length`); n != 1 {
				t.Errorf("said %d times", n)
			}
			if tc.ttl > time.Minute {
				return
			}
			waitHome(a, time.Until(created.Add(tc.ttl))+6*time.Second, "banner-destroyed")
			if f, title := focused(a), evalJS[string](a, `document.title`); f != "banner-destroyed" || title != "ROOM DESTROYED · private_chat" {
				t.Errorf("home after expiry: focus on %q, title %q", f, title)
			}
		})
	}
}

// goOffline takes b's network away (or gives it back): requests and the
// socket fail, navigator.onLine and the online/offline events follow.
func goOffline(b *browser, offline bool) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	rules := []*network.Conditions{}
	if offline {
		rules = append(rules, &network.Conditions{Offline: true, DownloadThroughput: -1, UploadThroughput: -1})
	}
	if _, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{MatchedNetworkConditions: rules}); err != nil {
		b.fail("network conditions: %v", err)
	}
	if _, err := chromedp.Call(ctx, network.OverrideNetworkState, network.OverrideNetworkStateParams{Offline: offline, DownloadThroughput: -1, UploadThroughput: -1}); err != nil {
		b.fail("network state: %v", err)
	}
}

// TestBrowserOfflineSendsWait: with the network gone (the socket may still
// look open) the page says so; a message written then waits as sending…,
// without failing; when the network is back it goes out by itself, once,
// and the other page gets it. A message that failed for want of an answer
// goes again by itself too once the connection is back: no manual resend.
func TestBrowserOfflineSendsWait(t *testing.T) {
	s, a, b, _ := roomOfTwo(t, nil, "")
	sendWithEnter(a, "before")
	waitMessages(b, 1)

	goOffline(a, true)
	waitJS[bool](a, 5*time.Second, "the offline notice",
		`document.getElementById("conn-status").textContent.startsWith("You are offline.")`)
	sendsBefore := len(a.framesSent("send"))
	a.do(10*time.Second, "type and press Enter", chromedp.SendKeys(chromedp.ID("message-input"), "written offline\n"))
	time.Sleep(1500 * time.Millisecond) // what would go out, or fail, has by now
	if st := evalJS[string](a, `[...document.querySelectorAll("#messages .msg")].at(-1).dataset.state`); st != "sending" {
		t.Errorf("offline, the message shows %q, want sending", st)
	}
	if n := len(a.framesSent("send")) - sendsBefore; n != 0 {
		t.Errorf("offline, the page sent %d send frames", n)
	}
	a.screenshot("room-offline-desktop")

	goOffline(a, false)
	waitJS[bool](a, 10*time.Second, "sent once the network is back",
		`["sent", "read"].includes([...document.querySelectorAll("#messages .msg")].at(-1).dataset.state) &&
		 document.getElementById("conn-status").textContent === ""`)
	got := waitMessages(b, 2)
	time.Sleep(500 * time.Millisecond) // a duplicate would be on its way by now
	if shown := evalJS[[]shownMessage](b, messagesJS); len(shown) != 2 || got[1].Text != "written offline" {
		t.Errorf("B shows %+v", shown)
	}
	if n := len(a.framesSent("send")) - sendsBefore; n != 1 {
		t.Errorf("the waiting message went out %d times, want once", n)
	}
	// The messages service is away: the send fails (503), with RETRY; the
	// service comes back, then the connection does (here: the network
	// blinks), and the message goes again by itself, same clientId.
	gone := serviceProc(t, s, "messages")
	if err := gone.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-gone.Exited()
	recordAnnouncements(a)
	a.do(10*time.Second, "type and press Enter", chromedp.SendKeys(chromedp.ID("message-input"), "sent again by itself\n"))
	waitJS[bool](a, 15*time.Second, "failed, with RETRY",
		`[...document.querySelectorAll("#messages .msg")].at(-1).dataset.state === "failed"`)
	waitAnnounced(a, "Message not sent: ")
	if _, err := s.Spawn("messages", 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the new messages service subscribes
	goOffline(a, true)
	goOffline(a, false)
	waitJS[bool](a, 15*time.Second, "sent again by itself once the connection is back",
		`(() => { const m = [...document.querySelectorAll("#messages .msg")].at(-1);
		  return m.querySelector(".msg-text").textContent === "sent again by itself" && ["sent", "read"].includes(m.dataset.state); })()`)
	waitMessages(b, 3)
	time.Sleep(500 * time.Millisecond) // a duplicate would be on its way by now
	if shown := evalJS[[]shownMessage](b, messagesJS); len(shown) != 3 {
		t.Errorf("B shows %+v, want 3 messages once each", shown)
	}
	// The message is sealed: its frames are the last clientId's.
	var again []map[string]any
	sent := a.framesSent("send")
	for _, f := range sent {
		if len(sent) > 0 && f["clientId"] == sent[len(sent)-1]["clientId"] && sealedFrame(f) {
			again = append(again, f)
		}
	}
	if len(again) != 2 || again[0]["clientId"] != again[1]["clientId"] {
		t.Errorf("the failed message was sent %v, want twice with one clientId (the second by itself)", again)
	}

	// Offline, the page's socket and TTL checks failed in the console; nothing else may have.
	problems, violations := a.drain()
	for _, x := range problems {
		if !strings.Contains(x, "ERR_INTERNET_DISCONNECTED") && !strings.Contains(x, "WebSocket connection to") {
			t.Errorf("A: %s", x)
		}
	}
	for _, v := range violations {
		t.Errorf("A: CSP violation %s", v)
	}
}

// TestBrowserChatFeatures: on a phone the newest message stays in view when
// the on-screen keyboard shrinks the page; scrolled up, a "New messages"
// cue appears and brings the reader down; a 1,200-character paste is kept
// whole, counted and refused with a reason instead of cut; in a hidden tab
// a peer's message puts a count in the title and, once asked for, a
// notification without its text.
func TestBrowserChatFeatures(t *testing.T) {
	s := startStack(t, 1, nil)
	gw := s.Gateways()[0]
	a := newBrowsers(t, "A")[0]
	p := startBrowsers(t, phone, "phone")[0]
	r := createRoom(a, gw)
	joinRoom(p, r)

	for i := range 12 {
		sendWithEnter(a, fmt.Sprintf("message %d, long enough to take a line or two on a phone screen", i+1))
	}
	waitMessages(p, 12)
	const lastVisible = `(() => { const s = document.getElementById("messages").getBoundingClientRect();
	  const m = [...document.querySelectorAll("#messages .msg")].at(-1).getBoundingClientRect();
	  return m.bottom <= s.bottom + 1 && m.top >= s.top - 1; })()`
	waitJS[bool](p, 5*time.Second, "the newest message in view", lastVisible)

	if px := evalJS[string](p, `getComputedStyle(document.getElementById("message-input")).fontSize`); px != "16px" {
		t.Errorf("the message box is %s on a phone, want 16px (no zoom on focus)", px)
	}
	type box struct{ W, H float64 }
	for _, id := range []string{"copy", "show-qr", "destroy", "send"} {
		bx := evalJS[box](p, `(() => { const r = document.getElementById(`+strconv.Quote(id)+`).getBoundingClientRect(); return {W: r.width, H: r.height}; })()`)
		if bx.W < 44 || bx.H < 44 {
			t.Errorf("#%s is %.0fx%.0f px on a phone, want at least 44x44", id, bx.W, bx.H)
		}
	}
	// The keyboard opens: the page shrinks to 390x450.
	p.do(5*time.Second, "shrink the viewport", chromedp.EmulateViewport(390, 450, chromedp.EmulateMobile, chromedp.EmulateTouch))
	waitJS[bool](p, 5*time.Second, "the newest message still in view after the viewport shrank", lastVisible)
	checkAxe(t, p, "chat (phone, keyboard open)")
	p.screenshot("room-phone-keyboard")
	p.do(5*time.Second, "restore the viewport", chromedp.EmulateViewport(phone.w, phone.h, chromedp.EmulateMobile, chromedp.EmulateTouch))

	// Scrolled up, a new message shows the cue; pressing it goes down.
	waitJS[bool](p, 5*time.Second, "the newest message in view at full size again", lastVisible)
	// Scrolls up on every poll: a resize still being handled may bring the view down once.
	waitJS[bool](p, 5*time.Second, "scrolled up", `(() => { document.getElementById("messages").scrollTop = 0; return !(`+lastVisible+`); })()`)
	sendWithEnter(a, "a new one while you were reading")
	waitMessages(p, 13)
	waitJS[bool](p, 5*time.Second, "the new-messages cue",
		`document.getElementById("new-messages").checkVisibility() && document.getElementById("new-messages").textContent === "↓ New messages"`)
	p.screenshot("room-phone-new-messages")
	p.do(5*time.Second, "press the cue", chromedp.Click(chromedp.ID("new-messages")))
	waitJS[bool](p, 5*time.Second, "down at the newest, the cue gone", lastVisible+` && !document.getElementById("new-messages").checkVisibility()`)

	// A long paste: kept whole, counted, not sendable, said once.
	recordAnnouncements(a)
	long := strings.Repeat("x", 1200)
	a.do(5*time.Second, "focus the box", chromedp.Focus(chromedp.ID("message-input")))
	ctx, cancel := context.WithTimeout(a.ctx, 5*time.Second)
	if _, err := chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: long}); err != nil {
		t.Fatal(err)
	}
	cancel()
	type counter struct {
		Len     int    `json:"len"`
		Text    string `json:"text"`
		Over    bool   `json:"over"`
		Off     bool   `json:"off"`
		Invalid string `json:"invalid"`
	}
	c := waitJS[counter](a, 5*time.Second, "the counter over the limit", `(() => { const i = document.getElementById("message-input");
	  return document.getElementById("counter").textContent === "1200/1000" && {len: i.value.length, text: document.getElementById("counter").textContent,
	    over: document.getElementById("counter").classList.contains("is-over"), off: document.getElementById("send").disabled,
	    invalid: i.getAttribute("aria-invalid") || ""}; })()`)
	if c.Len != 1200 || !c.Over || !c.Off || c.Invalid != "true" {
		t.Errorf("after a 1,200-character paste: %+v, want all of it kept, counted over the limit, SEND off", c)
	}
	a.key(kb.Enter)
	waitAnnounced(a, "200 characters too long")
	if n := len(evalJS[[]shownMessage](a, messagesJS)); n != 13 {
		t.Errorf("Enter on a draft over the limit sent it: %d messages", n)
	}
	evalJS[chromedp.Void](a, `(() => { const i = document.getElementById("message-input"); i.value = ""; i.dispatchEvent(new Event("input")); })()`)

	// The phone's tab goes to the background; NOTIFY was pressed before.
	evalJS[chromedp.Void](p, `(() => {
	  window.__notes = [];
	  window.Notification = class { constructor(title, opts) { window.__notes.push({title, body: opts?.body ?? "", tag: opts?.tag ?? ""}); }
	    addEventListener() {} close() {} static permission = "granted"; static requestPermission() { return Promise.resolve("granted"); } };
	})()`)
	p.do(5*time.Second, "press NOTIFY", chromedp.Click(chromedp.ID("notify")))
	waitJS[bool](p, 5*time.Second, "NOTIFY on", `document.getElementById("notify").getAttribute("aria-pressed") === "true"`)
	evalJS[chromedp.Void](p, `(() => { Object.defineProperty(document, "visibilityState", {configurable: true, get: () => "hidden"});
	  document.dispatchEvent(new Event("visibilitychange")); })()`)
	sendWithEnter(a, "secret words")
	waitMessages(p, 14)
	title := waitJS[string](p, 5*time.Second, "the title badge", `document.title.startsWith("(1) ") && document.title`)
	type note struct{ Title, Body, Tag string }
	notes := evalJS[[]note](p, `window.__notes`)
	if len(notes) != 1 || notes[0].Title != "private_chat" || notes[0].Body != "New message" || strings.Contains(notes[0].Body+notes[0].Title, "secret") {
		t.Errorf("notifications %+v, want one saying only that there is a new message", notes)
	}
	t.Logf("hidden tab: title %q, notification %+v", title, notes)
	evalJS[chromedp.Void](p, `(() => { Object.defineProperty(document, "visibilityState", {configurable: true, get: () => "visible"});
	  document.dispatchEvent(new Event("visibilitychange")); })()`)
	waitJS[bool](p, 5*time.Second, "the badge gone once the tab is back", `document.title === "Room · private_chat"`)
}

// TestBrowserForcedColoursLanguagesRTL: in forced-colours mode every
// control keeps a visible border and the focus ring; a browser that prefers
// German gets the UI in German (lang="de", no English flash, axe clean);
// with dir="rtl" the layout mirrors and nothing overflows.
func TestBrowserForcedColoursLanguagesRTL(t *testing.T) {
	s := startStack(t, 1, nil)
	gw := s.Gateways()[0]
	bs := newBrowsers(t, "forced", "de")
	f, de := bs[0], bs[1]

	ctx, cancel := context.WithTimeout(f.ctx, 5*time.Second)
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "forced-colors", Value: "active"}},
	}); err != nil {
		t.Fatal(err)
	}
	cancel()
	r := createRoom(f, gw)
	type look struct {
		Border  string `json:"border"`
		Outline string `json:"outline"`
	}
	for _, id := range []string{"copy", "show-qr", "notify", "destroy", "messages", "message-input", "send"} {
		if id != "send" { // disabled while the box is empty: no focus to show
			evalJS[chromedp.Void](f, `document.activeElement.blur()`)
			tabTo(f, id) // keyboard focus, so :focus-visible applies
		}
		l := evalJS[look](f, `(() => { const s = getComputedStyle(document.getElementById(`+strconv.Quote(id)+`));
		  return {border: s.borderTopStyle + " " + s.borderTopWidth, outline: s.outlineStyle + " " + s.outlineWidth}; })()`)
		if id != "messages" && (strings.HasPrefix(l.Border, "none") || strings.HasSuffix(l.Border, " 0px")) {
			t.Errorf("forced colours: #%s has border %q", id, l.Border)
		}
		if id != "send" && (strings.HasPrefix(l.Outline, "none") || strings.HasSuffix(l.Outline, " 0px")) {
			t.Errorf("forced colours: #%s focused from the keyboard has outline %q", id, l.Outline)
		}
	}
	f.screenshot("room-forced-colors")

	// German, from the browser's preferences.
	ua := evalJS[string](de, `navigator.userAgent`)
	ctx, cancel = context.WithTimeout(de.ctx, 5*time.Second)
	if _, err := chromedp.Call(ctx, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: ua, AcceptLanguage: "de-DE,de;q=0.9"}); err != nil {
		t.Fatal(err)
	}
	cancel()
	de.navigate(gw + "/")
	type german struct {
		Lang   string `json:"lang"`
		Create string `json:"create"`
		Label  string `json:"label"`
		Shown  bool   `json:"shown"`
	}
	g := waitJS[german](de, 10*time.Second, "the German home page", `!document.getElementById("create").disabled && {
	  lang: document.documentElement.lang, create: document.getElementById("create").textContent,
	  label: document.querySelector("label[for=username]").textContent,
	  shown: getComputedStyle(document.body).visibility === "visible"}`)
	if g.Lang != "de" || g.Create != "SICHEREN RAUM ERSTELLEN" || g.Label != "Deine Identität" || !g.Shown {
		t.Errorf("German home page: %+v", g)
	}
	settle(de)
	checkAxe(t, de, "home (German)")
	checkCLS(t, de, "home (German)")
	joinRoom(de, r)
	sendWithEnter(de, "Hallo!")
	waitMessages(f, 1)
	if got := waitMessages(de, 1); got[0].Sender != "DU" || got[0].Status != "gesendet" && got[0].Status != "gelesen" {
		t.Errorf("German room shows %+v", got[0])
	}
	if d := evalJS[string](de, `document.getElementById("destroy").textContent + "|" + document.getElementById("message-input").placeholder`); d != "💣JETZT ZERSTÖREN|Nachricht eingeben..." {
		t.Errorf("German room: %q", d)
	}
	settle(de)
	checkAxe(t, de, "chat (German)")
	checkCLS(t, de, "chat (German)")

	// Right to left: the header's blocks and the messages start on the right.
	evalJS[chromedp.Void](de, `document.documentElement.dir = "rtl"`)
	type rtl struct{ InfoRight, ActionsRight, MsgRight, ListRight float64 }
	m := evalJS[rtl](de, `(() => { const r = (q) => document.querySelector(q).getBoundingClientRect().right;
	  return {InfoRight: r(".room-info"), ActionsRight: r(".room-actions"), MsgRight: r("#messages .msg"), ListRight: r(".msg-list")}; })()`)
	if m.InfoRight <= m.ActionsRight || m.ListRight-m.MsgRight > 1 {
		t.Errorf("dir=rtl does not mirror the layout: %+v", m)
	}
	checkFits(t, de)
	// The viewport as shown (a full-page capture does not follow a right-to-left scroll origin).
	ctx, cancel = context.WithTimeout(de.ctx, 10*time.Second)
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if dir, err := screenshotDir(); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "room-rtl-desktop.png"), png, 0o644)
	}
}

// waitFor polls cond until it holds or within has passed.
func waitFor(within time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// TestBrowserOwnMessageIsYouInEveryTab: a message of one's own that arrives
// with no send of this page waiting for it (another tab of the same person,
// or a copy that overtook a slow answer) shows as YOU, never under one's
// own name.
func TestBrowserOwnMessageIsYouInEveryTab(t *testing.T) {
	_, a, b, r := roomOfTwo(t, nil, "")
	tab, cancel := chromedp.NewContext(a.ctx) // a second tab: same cookies, same name
	defer cancel()
	// The tab's first action binds it to its context: no deadline of its own.
	if err := chromedp.Do(tab, chromedp.Navigate(r.url)); err != nil {
		t.Fatal(err)
	}
	ready := func() bool {
		ctx, cancel := context.WithTimeout(tab, 3*time.Second)
		defer cancel()
		ok, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`!document.getElementById("messages").hasAttribute("aria-busy") &&
		  document.getElementById("presence").dataset.state === "online"`))
		return ok
	}
	if !waitFor(10*time.Second, ready) {
		ctx, cancel := context.WithTimeout(tab, 3*time.Second)
		state, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + " busy=" + document.getElementById("messages")?.getAttribute("aria-busy") +
		  " presence=" + document.getElementById("presence")?.dataset.state + " vis=" + document.visibilityState`))
		cancel()
		t.Fatalf("the second tab is not ready: %s %v", state, err)
	}

	sendWithEnter(a, "from my first tab")
	waitMessages(b, 1)
	var got shownMessage
	a.waitGo(10*time.Second, "the message in the second tab", func() bool {
		ctx, cancel := context.WithTimeout(tab, 3*time.Second)
		defer cancel()
		l, err := chromedp.Run(ctx, chromedp.Evaluate[[]shownMessage](messagesJS))
		if err != nil || len(l) == 0 {
			return false
		}
		got = l[0]
		return true
	})
	if got.Sender != "YOU" || !got.You || got.Text != "from my first tab" {
		t.Errorf("the second tab shows %+v, want the message as YOU", got)
	}
}
