package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "time/tzdata" // the browsers' time zones, whatever the machine has

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"wisp/stack"
	"wisp/stack/client"
	"wisp/testkit"
)

// The UI in a real browser: headless Debian chromium driven by chromedp,
// one chromium process per person, against the whole system started as
// separate processes. Every browser fails its test on any console error,
// uncaught exception, error log entry or CSP violation (see
// browser.checkClean); screenshots go to artifacts/screenshots.

var hhmmRE = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)

// checkMessage checks one message shown in b: sender (or YOU), text, and an
// HH:mm time that is b's local time of its timestamp, sent during the test.
func checkMessage(t *testing.T, b *browser, m shownMessage, sender string, you bool, text string, since time.Time) {
	t.Helper()
	who := b.name
	if m.Sender != sender || m.You != you || m.Text != text {
		t.Errorf("%s sees %+v, want sender %q (you=%v) text %q", who, m, sender, you, text)
	}
	if !hhmmRE.MatchString(m.Time) {
		t.Errorf("%s sees time %q, want HH:mm", who, m.Time)
	}
	at, err := time.Parse(time.RFC3339Nano, m.DateTime)
	if err != nil {
		t.Errorf("%s: <time datetime=%q>: %v", who, m.DateTime, err)
		return
	}
	if got := at.In(b.loc).Format("15:04"); got != m.Time {
		t.Errorf("%s sees %q for a message sent at %s, which is %s in its time zone %s", who, m.Time, m.DateTime, got, b.loc)
	}
	if at.Before(since.Add(-2*time.Second)) || at.After(time.Now().Add(2*time.Second)) {
		t.Errorf("%s: message time %s outside the test's run (%s..now)", who, at, since)
	}
}

type countdownState struct {
	Text   string `json:"text"`
	Urgent bool   `json:"urgent"`
	Color  string `json:"color"`
}

const countdownJS = `(() => { const c = document.getElementById("countdown");
  return /^\d+:\d\d$/.test(c.textContent) &&
    {text: c.textContent, urgent: c.classList.contains("is-urgent"), color: getComputedStyle(c).color}; })()`

var countdownRE = regexp.MustCompile(`^(\d+):(\d\d)$`)

func countdownSeconds(t *testing.T, s string) int {
	t.Helper()
	m := countdownRE.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("countdown %q is not m:ss", s)
	}
	mins, _ := strconv.Atoi(m[1])
	secs, _ := strconv.Atoi(m[2])
	if secs > 59 {
		t.Fatalf("countdown %q has %d seconds", s, secs)
	}
	return mins*60 + secs
}

const (
	amber = "rgb(245, 158, 11)" // --amber-500
	red   = "rgb(239, 68, 68)"  // --red-500
)

// TestBrowserTwoPeopleChat: two separate browsers create and join one room
// and chat both ways, live, with names, YOU and HH:mm times.
func TestBrowserTwoPeopleChat(t *testing.T) {
	_, gw, a, b := twoBrowsers(t, nil)
	// Two time zones half an hour off any whole-hour zone: each shows the
	// same message at a different HH:mm, its own local time.
	a.setTimezone("Asia/Kolkata")
	b.setTimezone("America/St_Johns")
	since := time.Now()

	// Home: title, identity kept in localStorage, the button.
	a.navigate(gw + "/")
	home := waitHome(a, 10*time.Second, "")
	if home.Brand != ">private_chat" || home.Label != "Your Identity" || home.Create != "CREATE SECURE ROOM" {
		t.Errorf("home page shows %q / %q / %q", home.Brand, home.Label, home.Create)
	}
	if !usernameRE.MatchString(home.Username) || home.Stored != home.Username {
		t.Errorf("identity %q (localStorage chat_username %q), want anonymous-{animal}-{5 chars} kept in localStorage", home.Username, home.Stored)
	}
	a.navigate(gw + "/")
	if again := waitHome(a, 10*time.Second, ""); again.Username != home.Username {
		t.Errorf("identity changed on reload: %q then %q", home.Username, again.Username)
	}
	nameA := home.Username

	// CREATE SECURE ROOM lands on /room/{id}, empty and counting down from 10:00.
	r := clickCreate(a, gw)
	type roomView struct {
		Empty       string `json:"empty"`
		EmptyShown  bool   `json:"emptyShown"`
		Placeholder string `json:"placeholder"`
		SendOff     bool   `json:"sendOff"`
		Cookie      string `json:"cookie"`
		Destroy     string `json:"destroy"`
		Copy        string `json:"copy"`
	}
	view := waitJS[roomView](a, 10*time.Second, "empty room",
		`document.getElementById("empty").checkVisibility() && {
		  empty: document.getElementById("empty").textContent, emptyShown: true,
		  placeholder: document.getElementById("message-input").placeholder,
		  sendOff: document.getElementById("send").disabled, cookie: document.cookie,
		  destroy: document.getElementById("destroy").textContent, copy: document.getElementById("copy").textContent}`)
	if view.Empty != "No messages yet, start the conversation." || view.Placeholder != "Type message..." ||
		!view.SendOff || view.Destroy != "💣DESTROY NOW" || view.Copy != "COPY" {
		t.Errorf("room page: %+v", view)
	}
	if view.Cookie != "" {
		t.Errorf("JavaScript sees cookies %q; the room cookie must be HttpOnly", view.Cookie)
	}
	cd := waitJS[countdownState](a, 5*time.Second, "countdown", countdownJS)
	if left := countdownSeconds(t, cd.Text); left < 9*60+30 || left > 10*60 || cd.Urgent || cd.Color != amber {
		t.Errorf("countdown %+v in a new 10-minute room, want about 10:00, amber, not urgent", cd)
	}

	// B opens the link in another browser: another identity, same room.
	joinRoom(b, r)
	nameB := evalJS[string](b, `localStorage.getItem("chat_username")`)
	if !usernameRE.MatchString(nameB) || nameB == nameA {
		t.Errorf("B's identity %q (A's %q)", nameB, nameA)
	}

	// From here on neither page may reload or re-fetch the list per message.
	for _, p := range []*browser{a, b} {
		evalJS[bool](p, `window.__sameDocument = true`)
	}
	getsA, getsB := a.requestCount("GET ", "/api/messages"), b.requestCount("GET ", "/api/messages")

	// A presses Enter, B clicks SEND.
	const fromA, fromB = "hello from A ✓", "hi from B, how are you?"
	sendWithEnter(a, fromA)
	got := waitMessages(b, 1)
	checkMessage(t, b, got[0], nameA, false, fromA, since)
	sendWithButton(b, fromB)
	gotA := waitMessages(a, 2)
	gotB := waitMessages(b, 2)
	if len(gotA) != 2 || len(gotB) != 2 {
		t.Fatalf("A sees %+v, B sees %+v", gotA, gotB)
	}
	checkMessage(t, a, gotA[0], "YOU", true, fromA, since)
	checkMessage(t, a, gotA[1], nameB, false, fromB, since)
	checkMessage(t, b, gotB[0], nameA, false, fromA, since)
	checkMessage(t, b, gotB[1], "YOU", true, fromB, since)

	for _, p := range []*browser{a, b} {
		if !evalJS[bool](p, `window.__sameDocument === true && !document.getElementById("empty").checkVisibility()`) {
			t.Errorf("%s: the page reloaded, or still shows the empty-state text", p.name)
		}
	}
	if n := a.requestCount("GET ", "/api/messages"); n != getsA {
		t.Errorf("A fetched the message list %d more times while chatting; messages must come from the WebSocket", n-getsA)
	}
	if n := b.requestCount("GET ", "/api/messages"); n != getsB {
		t.Errorf("B fetched the message list %d more times while chatting; messages must come from the WebSocket", n-getsB)
	}

	// COPY puts the room's link on the clipboard and says COPIED!.
	a.grantClipboard(gw)
	a.do(5*time.Second, "click COPY", chromedp.Click(chromedp.ID("copy")))
	waitJS[bool](a, 5*time.Second, "COPY turns into COPIED!", `document.getElementById("copy").textContent === "COPIED!"`)
	// The link carries A's key fingerprint in its fragment (end-to-end).
	if clip := evalJS[string](a, `navigator.clipboard.readText()`, chromedp.EvalAwaitPromise); !shareLinkRE(r).MatchString(clip) {
		t.Errorf("clipboard holds %q, want the room's link %q with #fp=<fingerprint>", clip, r.url)
	}
}

// roomOfTwo starts the system and two browsers: A creates a room on gw (the
// first gateway when "") and B joins it.
func roomOfTwo(t *testing.T, env map[string]string, gw string) (*stack.System, *browser, *browser, room) {
	t.Helper()
	s, first, a, b := twoBrowsers(t, env)
	if gw == "" {
		gw = first
	}
	r := createRoom(a, gw)
	joinRoom(b, r)
	return s, a, b, r
}

// twoBrowsers starts the system and browsers A and B; gw is the first gateway.
func twoBrowsers(t *testing.T, env map[string]string) (s *stack.System, gw string, a, b *browser) {
	t.Helper()
	s = startStack(t, 1, env)
	bs := newBrowsers(t, "A", "B")
	return s, s.Gateways()[0], bs[0], bs[1]
}

// TestBrowserThirdVisitorRoomFull: with two members in the room, a third
// browser opening the link lands on the home page with the ROOM FULL
// banner. The creator reopening the link keeps its one slot.
func TestBrowserThirdVisitorRoomFull(t *testing.T) {
	s := startStack(t, 1, nil)
	gw := s.Gateways()[0]
	bs := newBrowsers(t, "A", "C")
	a, c := bs[0], bs[1]

	r := createRoom(a, gw)
	joinRoom(a, r) // the creator reopens the link: recognised, no second slot

	// The second member (an HTTP client with its own cookie jar) still gets in.
	if err := client.New(gw).Join(context.Background(), r.id); err != nil {
		t.Fatalf("second member refused after the creator reopened the link: %v", err)
	}

	c.navigate(r.url)
	waitHome(c, 10*time.Second, "banner-full")

	// The refused visitor took nothing: the creator is still in.
	joinRoom(a, r)
}

// TestBrowserDestroyNowSendsBothHome: DESTROY NOW asks first (CANCEL, the
// safe choice, has the focus; Esc keeps the room too); confirmed, it sends
// both browsers to the home page with the ROOM DESTROYED banner; the link
// is dead after.
func TestBrowserDestroyNowSendsBothHome(t *testing.T) {
	_, a, b, r := roomOfTwo(t, nil, "")
	sendWithEnter(a, "about to go")
	waitMessages(b, 1)

	b.do(5*time.Second, "click DESTROY NOW", chromedp.Click(chromedp.ID("destroy")))
	waitJS[bool](b, 5*time.Second, "the confirmation open, CANCEL focused",
		`document.getElementById("confirm-destroy").open && document.activeElement.id === "confirm-cancel"`)
	b.do(5*time.Second, "press Esc", chromedp.KeyEvent(kb.Escape))
	waitJS[bool](b, 5*time.Second, "the confirmation closed, focus back on DESTROY NOW",
		`!document.getElementById("confirm-destroy").open && document.activeElement.id === "destroy"`)
	b.do(5*time.Second, "click DESTROY NOW, then CANCEL", chromedp.Click(chromedp.ID("destroy")), chromedp.Click(chromedp.ID("confirm-cancel")))
	time.Sleep(300 * time.Millisecond) // a destroy would be on its way by now
	if n := b.requestCount("DELETE ", "/api/room"); n != 0 {
		t.Fatalf("%d DELETE requests without a confirmation", n)
	}
	sendWithEnter(a, "still here")
	waitMessages(b, 2)

	destroyNow(b)
	waitHome(b, 10*time.Second, "banner-destroyed")
	waitHome(a, 10*time.Second, "banner-destroyed")

	// The link now leads to ROOM NOT FOUND, for a former member too.
	a.navigate(r.url)
	waitHome(a, 10*time.Second, "banner-not-found")
}

// TestBrowserRoomExpiresInBoth: in a room with a 6 s ROOM_TTL the countdown
// shows m:ss, red, ticking down; at expiry both browsers land on the home
// page with the ROOM DESTROYED banner.
func TestBrowserRoomExpiresInBoth(t *testing.T) {
	const ttl = 6 * time.Second
	_, gw, a, b := twoBrowsers(t, map[string]string{"ROOM_TTL": ttl.String()})

	a.navigate(gw + "/")
	waitHome(a, 10*time.Second, "")
	created := time.Now()
	r := clickCreate(a, gw)
	joinRoom(b, r)

	first := waitJS[countdownState](a, 5*time.Second, "countdown", countdownJS)
	left := countdownSeconds(t, first.Text)
	if left < 1 || left > 6 || !first.Urgent || first.Color != red {
		t.Errorf("countdown %+v in a 6 s room, want 0:01..0:06 in red (is-urgent)", first)
	}
	// It ticks down.
	next := waitJS[countdownState](a, 3*time.Second, "countdown ticking",
		`(() => { const c = `+countdownJS+`; return c && c.text !== `+strconv.Quote(first.Text)+` && c; })()`)
	if countdownSeconds(t, next.Text) >= left {
		t.Errorf("countdown went from %s to %s", first.Text, next.Text)
	}
	onB := waitJS[countdownState](b, 3*time.Second, "countdown on B", countdownJS)
	if d := countdownSeconds(t, onB.Text) - countdownSeconds(t, next.Text); d < -2 || d > 2 || !onB.Urgent {
		t.Errorf("B's countdown %+v is not in step with A's %s", onB, next.Text)
	}

	for _, p := range []*browser{a, b} {
		waitHome(p, time.Until(created.Add(ttl))+6*time.Second, "banner-destroyed")
		if early := created.Add(ttl - 1500*time.Millisecond); time.Now().Before(early) {
			t.Errorf("%s left the room %v before it expired", p.name, time.Until(early))
		}
	}
	t.Logf("both home %v after the room was created (TTL %v)", time.Since(created).Round(10*time.Millisecond), ttl)

	// The room is really gone.
	err := client.New(gw).Join(context.Background(), r.id)
	var se *client.StatusError
	if !errors.As(err, &se) || se.Location != "/?error=room-not-found" {
		t.Errorf("joining the expired room: %v, want a redirect to /?error=room-not-found", err)
	}
}

// TestBrowserMessagesAreText: chat text and sender names that look like
// markup are shown as literal text and run nothing.
func TestBrowserMessagesAreText(t *testing.T) {
	_, gw, a, b := twoBrowsers(t, nil)

	const (
		imgText    = `<img src=x onerror="window.__pwned=1">`
		scriptText = `<script>window.__pwned=2</script>`
		evilName   = `<img src=x onerror="window.__pwned=3">`
	)
	since := time.Now()
	r := createRoom(a, gw)
	// B's name is markup too (it is the client's own choice, in localStorage).
	b.navigate(gw + "/")
	waitHome(b, 10*time.Second, "")
	evalJS[chromedp.Void](b, `localStorage.setItem("chat_username", `+strconv.Quote(evilName)+`)`)
	joinRoom(b, r)

	const census = `({images: document.images.length, scripts: document.scripts.length,
	  inList: document.querySelectorAll("#messages img, #messages script, #messages b").length})`
	type domCensus struct{ Images, Scripts, InList int }
	before := map[*browser]domCensus{a: evalJS[domCensus](a, census), b: evalJS[domCensus](b, census)}

	sendWithEnter(a, imgText)
	sendWithButton(a, scriptText)
	sendWithEnter(b, "<b>not bold</b> &amp; done")

	gotB := waitMessages(b, 3)
	gotA := waitMessages(a, 3)
	nameA := evalJS[string](a, `localStorage.getItem("chat_username")`)
	checkMessage(t, b, gotB[0], nameA, false, imgText, since)
	checkMessage(t, b, gotB[1], nameA, false, scriptText, since)
	checkMessage(t, a, gotA[2], evilName, false, "<b>not bold</b> &amp; done", since)

	for _, p := range []*browser{a, b} {
		if pwned := evalJS[string](p, `typeof window.__pwned`); pwned != "undefined" {
			t.Errorf("%s: window.__pwned is %s: a message ran as code", p.name, pwned)
		}
		if after := evalJS[domCensus](p, census); after != before[p] {
			t.Errorf("%s: elements before %+v, after the messages %+v", p.name, before[p], after)
		}
		for _, req := range p.requestLog() {
			if strings.HasSuffix(req, gw+"/x") || strings.HasSuffix(req, gw+"/room/x") {
				t.Errorf("%s: %s: a message's <img src=x> was loaded", p.name, req)
			}
		}
	}
}

// TestBrowserNoConsoleErrorsOrCSPViolations walks the whole flow in two
// browsers checking, at each step, that there was no console error,
// uncaught exception, error log entry or CSP violation; that the pages are
// served with a CSP without unsafe-inline; and, last, that both detectors
// work: an inline script injected into the page is blocked and reported.
func TestBrowserNoConsoleErrorsOrCSPViolations(t *testing.T) {
	_, gw, a, b := twoBrowsers(t, nil)
	clean := func(step string) {
		t.Helper()
		for _, p := range []*browser{a, b} {
			problems, violations := p.drain()
			for _, x := range problems {
				t.Errorf("%s: %s: %s", step, p.name, x)
			}
			for _, v := range violations {
				t.Errorf("%s: %s: CSP violation %s", step, p.name, v)
			}
		}
	}

	r := createRoom(a, gw)
	clean("home and create")
	joinRoom(b, r)
	clean("join")
	sendWithEnter(a, "one")
	sendWithButton(b, "two")
	waitMessages(a, 2)
	waitMessages(b, 2)
	clean("chat")
	a.grantClipboard(gw)
	a.do(5*time.Second, "click COPY", chromedp.Click(chromedp.ID("copy")))
	waitJS[bool](a, 5*time.Second, "COPIED!", `document.getElementById("copy").textContent === "COPIED!"`)
	clean("copy")
	joinRoom(b, r) // reopen the link: a member, so the room again
	if got := waitMessages(b, 2); got[1].Sender != "YOU" {
		t.Errorf("after reopening the link B sees %+v", got)
	}
	clean("reopen")
	destroyNow(a)
	waitHome(a, 10*time.Second, "banner-destroyed")
	waitHome(b, 10*time.Second, "banner-destroyed")
	clean("destroy")
	b.navigate(r.url)
	waitHome(b, 10*time.Second, "banner-not-found")
	clean("dead link")

	for _, p := range []*browser{a, b} {
		csps := p.documentCSPs()
		if len(csps) == 0 {
			t.Errorf("%s: no document responses recorded", p.name)
		}
		for _, c := range csps {
			if !strings.Contains(c, "script-src 'self'") || strings.Contains(c, "unsafe-inline") || strings.Contains(c, "unsafe-eval") {
				t.Errorf("%s: page served with CSP %q", p.name, c)
			}
		}
	}

	// The detectors work: an inline script is refused by the CSP, the page's
	// securitypolicyviolation listener reports it, and the console says so.
	evalJS[chromedp.Void](a, `(() => { const s = document.createElement("script");
	  s.textContent = "window.__inlineRan = true"; document.head.append(s); })()`)
	a.waitGo(5*time.Second, "the injected inline script reported as a CSP violation", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.violations) > 0
	})
	if ran := evalJS[string](a, `typeof window.__inlineRan`); ran != "undefined" {
		t.Errorf("an injected inline script ran (window.__inlineRan is %s): the CSP allows inline scripts", ran)
	}
	if n := evalJS[int](a, `window.__cspViolations`); n != 1 {
		t.Errorf("the page counted %d CSP violations, want 1", n)
	}
	problems, violations := a.drain()
	var v struct{ Directive, Sample string }
	if len(violations) != 1 || json.Unmarshal([]byte(violations[0]), &v) != nil || v.Directive != "script-src-elem" {
		t.Errorf("violations reported for the injected script: %q", violations)
	}
	t.Logf("the injected inline script showed in the console as: %q", problems)
	for _, p := range problems {
		if !strings.Contains(p, "Content Security Policy") {
			t.Errorf("unexpected console problem: %s", p)
		}
	}
	clean("after the canary")
}

// TestBrowserScreenshots saves full-page PNGs of the home and room pages,
// at desktop size and at phone width (390x844), to artifacts/screenshots,
// and checks that nothing overflows the phone's width.
func TestBrowserScreenshots(t *testing.T) {
	s := startStack(t, 1, nil)
	gw := s.Gateways()[0]
	a := newBrowsers(t, "desktop")[0]
	p := startBrowsers(t, phone, "phone")[0]

	a.navigate(gw + "/")
	waitHome(a, 10*time.Second, "")
	a.screenshot("home-desktop")
	p.navigate(gw + "/")
	waitHome(p, 10*time.Second, "")
	checkFits(t, p)
	p.screenshot("home-phone")

	r := clickCreate(a, gw)
	a.screenshot("room-empty-desktop")
	joinRoom(p, r)
	sendWithEnter(a, "hello! this room self-destructs, so say what you need to say.")
	sendWithButton(p, "got it. a longer line to see how wrapping looks on a narrow phone screen, with a-very-long-unbroken-word-that-must-not-overflow-the-bubble-at-all")
	sendWithEnter(a, "👍 see you")
	waitMessages(a, 3)
	waitMessages(p, 3)
	checkFits(t, p)
	a.screenshot("room-desktop")
	p.screenshot("room-phone")

	destroyNow(p)
	waitHome(p, 10*time.Second, "banner-destroyed")
	waitHome(a, 10*time.Second, "banner-destroyed")
	a.screenshot("home-destroyed-desktop")
	checkFits(t, p)
	p.screenshot("home-destroyed-phone")
}

// checkFits fails when the page scrolls sideways or a control sticks out
// of the viewport.
func checkFits(t *testing.T, b *browser) {
	t.Helper()
	out := evalJS[[]string](b, `(() => {
	  const w = document.documentElement.clientWidth, bad = [];
	  if (document.documentElement.scrollWidth > w) bad.push("page scrolls sideways: " + document.documentElement.scrollWidth + " > " + w);
	  for (const e of document.querySelectorAll("button, input, h1, .banner, .msg, .room-id")) {
	    if (!e.checkVisibility()) continue;
	    const r = e.getBoundingClientRect();
	    if (r.left < 0 || r.right > w + 0.5) bad.push((e.id || e.className) + " spans " + r.left + ".." + r.right + " of " + w);
	  }
	  return bad; })()`)
	for _, o := range out {
		t.Errorf("%s at %s: %s", b.name, evalJS[string](b, `location.pathname`), o)
	}
}

// TestBrowserSocketProtocol: two browsers use the two-way socket
// (docs/WEBSOCKET.md). The peer shows offline, then online when the second
// person opens the room; "typing…" shows on the other page while one types;
// a message shows "sending…" then "sent" (an ack on the socket, no POST),
// reaches the other page, and turns "read" once the other page shows it;
// the peer goes offline when the other person closes the tab.
func TestBrowserSocketProtocol(t *testing.T) {
	_, gw, a, b := twoBrowsers(t, nil)

	r := createRoom(a, gw)
	waitPresence(a, "offline") // alone in the room
	recordAnnouncements(a)
	joinRoom(b, r)
	waitPresence(a, "online")
	waitPresence(b, "online")
	waitAnnounced(a, "Peer is online.")
	recordAnnouncements(b)

	// B types: A sees "typing…"; B sent "typing" frames, not one per key.
	b.do(10*time.Second, "type without sending", chromedp.SendKeys(chromedp.ID("message-input"), "are you there"))
	waitJS[bool](a, 5*time.Second, `"typing…" on A while B types`,
		`document.getElementById("typing").checkVisibility() && document.getElementById("typing").textContent === "typing…"`)
	waitAnnounced(a, "Peer is typing…")
	a.screenshot("room-typing-desktop")
	if n := len(b.framesSent("typing")); n < 1 || n > 2 {
		t.Errorf("B sent %d typing frames while typing 13 keys within a second or two, want 1 (at most one per 2 s)", n)
	}
	// B sends it: A's "typing…" goes with B's message.
	b.do(10*time.Second, "press Enter", chromedp.SendKeys(chromedp.ID("message-input"), "?\n"))
	waitSent(b)
	waitMessages(a, 1)
	waitJS[bool](a, 2*time.Second, `"typing…" gone on A once B's message is there`,
		`!document.getElementById("typing").checkVisibility()`)

	// A sends over the socket: sending… then sent; B gets it; read once B shows it.
	recordStates(a)
	const text = "over the socket"
	sendWithEnter(a, text)
	got := waitMessages(b, 2)
	if got[1].Text != text || got[1].You || got[1].State != "" {
		t.Errorf("B sees %+v, want A's %q as the peer's message (no status)", got[1], text)
	}
	waitJS[bool](a, 10*time.Second, `A's message "read" after B shows it`,
		`(() => { const m = [...document.querySelectorAll("#messages .msg")].at(-1);
		  return m.querySelector(".msg-text").textContent === `+strconv.Quote(text)+` &&
		    m.dataset.state === "read" && m.querySelector(".msg-status").textContent === "read"; })()`)
	states := evalJS[[]string](a, `window.__states[`+strconv.Quote(text)+`] ?? []`)
	if len(states) != 3 || states[0] != "sending" || states[1] != "sent" || states[2] != "read" {
		t.Errorf("A's message went through %v, want [sending sent read]", states)
	}
	// Its chat.message, which comes before the ack, never showed as a second copy.
	if n := evalJS[int](a, `window.__added`); n != 1 {
		t.Errorf("A added %d message nodes for its one message", n)
	}
	// B's own message is read by A too (A shows it at the bottom of a visible page).
	waitJS[bool](b, 10*time.Second, `B's message "read" after A shows it`,
		`document.querySelector("#messages .msg.is-own")?.dataset.state === "read"`)
	waitAnnounced(b, "Peer read your message.")

	// The frames: one send with a clientId, answered by an ack with the same
	// one; reads with the seq of what was shown; and no POST at all.
	sends := a.framesSent("send")
	if len(sends) != 1 || !sealedFrame(sends[0]) || !clientIDRE.MatchString(fmt.Sprint(sends[0]["clientId"])) {
		t.Errorf("A sent %v, want one send frame of %q, sealed, with a 22-character base64url clientId", sends, text)
	} else {
		acked := false
		for _, f := range a.framesReceived("ack") {
			if d, _ := f["data"].(map[string]any); d != nil && d["clientId"] == sends[0]["clientId"] {
				acked = true
			}
		}
		if !acked {
			t.Errorf("A received no ack for clientId %v", sends[0]["clientId"])
		}
	}
	// Which came first on the sender's socket: its chat.message or its ack
	// (the page shows the message once either way).
	var order []string
	for _, f := range framesOf(a.receivedFrames(), "", "") {
		if e := fmt.Sprint(f["event"]); e == "ack" || e == "chat.message" {
			order = append(order, e)
		}
	}
	t.Logf("A's socket received, in order: %v", order)
	if reads := b.framesSent("read"); len(reads) == 0 || reads[len(reads)-1]["seq"] != float64(2) {
		t.Errorf("B sent read frames %v, want the last with seq 2", reads)
	}
	for _, p := range []*browser{a, b} {
		if n := p.requestCount("POST ", "/api/messages"); n != 0 {
			t.Errorf("%s used POST /api/messages %d times with its socket open", p.name, n)
		}
	}

	// B closes the tab: A shows the peer offline.
	b.closeTab()
	waitPresence(a, "offline")
	waitAnnounced(a, "Peer is offline.")
	t.Logf("A's announcer said %q", announced(a))
}

var clientIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)

// serviceProc returns the live process of a service (the first, if several).
func serviceProc(t *testing.T, s *stack.System, service string) *stack.Proc {
	t.Helper()
	p := s.LiveProc(service)
	if p == nil {
		t.Fatalf("no live %s process", service)
	}
	return p
}

// freeze stops p (SIGSTOP) and returns the function that lets it go on; it
// runs at the end of the test in any case, before the stack stops.
func freeze(t *testing.T, p *stack.Proc) (resume func()) {
	t.Helper()
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	resume = func() {
		once.Do(func() {
			if err := p.Signal(syscall.SIGCONT); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(resume)
	return resume
}

// TestBrowserFailedSendRetries: with the messages service frozen a send
// gets no answer in time and shows "failed" with RETRY, in place; RETRY
// (from the keyboard) sends it again with the same clientId and, once the
// service is back, it shows "sent" — one message in the store and on both
// pages, although both attempts reached the service.
func TestBrowserFailedSendRetries(t *testing.T) {
	s, a, b, r := roomOfTwo(t, map[string]string{"REQUEST_TIMEOUT": "2s"}, "")
	sendWithEnter(a, "first")
	waitMessages(b, 1)
	recordAnnouncements(a)

	resume := freeze(t, serviceProc(t, s, "messages"))

	const text = "stored exactly once"
	a.do(10*time.Second, "type and press Enter", chromedp.SendKeys(chromedp.ID("message-input"), text+"\n"))
	failed := waitJS[[]shownMessage](a, 15*time.Second, "the message failed, with RETRY",
		`(() => { const l = `+messagesJS+`; const m = l.at(-1); return m && m.text === `+strconv.Quote(text)+` && m.state === "failed" && l; })()`)
	m := failed[len(failed)-1]
	if m.Status != "failed" || !m.Retry || m.Sender != "YOU" || len(failed) != 2 {
		t.Errorf("A shows %+v, want its message in place as YOU, failed, with RETRY", failed)
	}
	if errs := a.framesReceived("error"); len(errs) != 1 {
		t.Errorf("A received error frames %v, want one (the gateway's timeout)", errs)
	} else {
		t.Logf("the failed attempt's answer: %v", errs[0])
	}
	waitAnnounced(a, "Message not sent: ")
	a.screenshot("room-failed-desktop")

	// RETRY from the keyboard, then the service wakes up and answers both attempts.
	a.do(5*time.Second, "focus RETRY and press Enter", chromedp.Focus(chromedp.CSS(".msg-retry")), chromedp.KeyEvent("\r"))
	waitJS[bool](a, 5*time.Second, "sending again, focus back in the composer",
		`[...document.querySelectorAll("#messages .msg")].at(-1).dataset.state === "sending" &&
		 document.activeElement === document.getElementById("message-input")`)
	resume()
	waitJS[bool](a, 10*time.Second, "the retried message sent",
		`(() => { const m = [...document.querySelectorAll("#messages .msg")].at(-1);
		  return m.querySelector(".msg-text").textContent === `+strconv.Quote(text)+` && ["sent", "read"].includes(m.dataset.state) &&
		    !m.querySelector(".msg-retry"); })()`)
	waitMessages(b, 2)
	waitAnnounced(a, "Message sent.")
	time.Sleep(500 * time.Millisecond) // a duplicate would be on its way by now
	t.Logf("A's announcer said %q", announced(a))

	sends := a.framesSent("send")
	if len(sends) != 3 || !sealedFrame(sends[1]) || !sealedFrame(sends[2]) || sends[1]["clientId"] != sends[2]["clientId"] {
		t.Errorf("A sent %v, want the retry with the first attempt's clientId", sends)
	}
	for _, p := range []*browser{a, b} {
		shown := evalJS[[]shownMessage](p, messagesJS)
		if len(shown) != 2 || shown[1].Text != text {
			t.Errorf("%s shows %+v, want [first, %q] once each", p.name, shown, text)
		}
		stored := evalJS[[]string](p, `fetch("/api/messages?roomId=`+r.id+`").then((r) => r.json()).then((d) => d.messages.map((m) => m.envelope))`,
			chromedp.EvalAwaitPromise)
		if len(stored) != 2 || stored[1] == "" {
			t.Errorf("the store holds %q, want two envelopes [first, %q]", stored, text)
		}
		if n := p.requestCount("POST ", "/api/messages"); n != 0 {
			t.Errorf("%s used POST /api/messages %d times with its socket open", p.name, n)
		}
	}
}

// TestBrowserSendSurvivesSocketDrop: a message still unanswered when the
// socket drops (its gateway dies) is sent again by itself, with the same
// clientId, once the page has reconnected (to the gateway started again on
// the same address); the store and both pages hold it once, although both
// attempts reached the messages service. Then a send that gets no answer
// for 10 s fails by itself, and turns sent when it turns out stored.
func TestBrowserSendSurvivesSocketDrop(t *testing.T) {
	port, err := testkit.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	// HTTP_ADDR in Env overrides the one the stack picks, for the gateway
	// started later too: the pages reconnect to the address they know.
	addr := "127.0.0.1:" + strconv.Itoa(port)
	s, a, b, _ := roomOfTwo(t, map[string]string{"HTTP_ADDR": addr, "REQUEST_TIMEOUT": "30s"}, "http://"+addr)
	resume := freeze(t, serviceProc(t, s, "messages"))

	const text = "sent across a reconnect"
	a.do(10*time.Second, "type and press Enter", chromedp.SendKeys(chromedp.ID("message-input"), text+"\n"))
	waitJS[bool](a, 5*time.Second, "sending", `document.querySelector("#messages .msg.is-own")?.dataset.state === "sending"`)
	// In an end-to-end room the send waits for the keys (B's page has
	// just opened): the gateway dies only once it is out on the socket.
	a.waitGo(10*time.Second, "the send out on the socket", func() bool { return len(a.framesSent("send")) == 1 })
	sockets := a.socketCount()
	old := serviceProc(t, s, "gateway")
	if err := old.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-old.Exited()
	waitJS[bool](a, 5*time.Second, "the socket dropped",
		`document.getElementById("conn-status").textContent === "offline — reconnecting…"`)
	if st := evalJS[string](a, `document.querySelector("#messages .msg.is-own").dataset.state`); st != "sending" {
		t.Errorf("after the drop the message shows %q, want still sending", st)
	}
	if _, err := s.Spawn("gateway", 1); err != nil {
		t.Fatal(err)
	}
	a.waitGo(10*time.Second, "A's socket back", func() bool { return a.socketCount() > sockets })
	a.waitGo(5*time.Second, "the send again on the new socket", func() bool { return len(a.framesSent("send")) == 2 })
	resume()
	waitJS[bool](a, 10*time.Second, "the message sent after the reconnect",
		`["sent", "read"].includes(document.querySelector("#messages .msg.is-own")?.dataset.state)`)
	waitMessages(b, 1)
	time.Sleep(500 * time.Millisecond) // a duplicate would be on its way by now

	sends := a.framesSent("send")
	if len(sends) != 2 || sends[0]["clientId"] != sends[1]["clientId"] {
		t.Errorf("A sent %v, want the same send twice (same clientId), once per socket", sends)
	}
	for _, p := range []*browser{a, b} {
		if shown := evalJS[[]shownMessage](p, messagesJS); len(shown) != 1 || shown[0].Text != text {
			t.Errorf("%s shows %+v, want %q once", p.name, shown, text)
		}
		if n := p.requestCount("POST ", "/api/messages"); n != 0 {
			t.Errorf("%s used POST /api/messages %d times", p.name, n)
		}
		// While the gateway was away the pages' reconnects and TTL checks
		// failed in the console; nothing else may have.
		problems, violations := p.drain()
		for _, x := range problems {
			// A request in flight when the gateway died fails as not connected.
			if !strings.Contains(x, "ERR_CONNECTION_REFUSED") && !strings.Contains(x, "ERR_SOCKET_NOT_CONNECTED") &&
				!strings.Contains(x, "ERR_CONNECTION_RESET") && !strings.Contains(x, "ERR_EMPTY_RESPONSE") &&
				!strings.Contains(x, "WebSocket connection to") {
				t.Errorf("%s: %s", p.name, x)
			}
		}
		for _, v := range violations {
			t.Errorf("%s: CSP violation %s", p.name, v)
		}
	}

	// No answer at all within 10 s (the service frozen, the gateway waiting
	// for it): the page itself gives up and offers RETRY. When the service
	// wakes up it stores the message after all, and its chat.message turns
	// the failed one into sent, without a retry and without a second copy.
	resume = freeze(t, serviceProc(t, s, "messages"))
	const late = "answered too late"
	sent := time.Now()
	a.do(10*time.Second, "type and press Enter", chromedp.SendKeys(chromedp.ID("message-input"), late+"\n"))
	waitJS[bool](a, 15*time.Second, "failed for want of an answer",
		`(() => { const m = [...document.querySelectorAll("#messages .msg")].at(-1);
		  return m.querySelector(".msg-text").textContent === `+strconv.Quote(late)+` && m.dataset.state === "failed" && !!m.querySelector(".msg-retry"); })()`)
	if d := time.Since(sent); d < 9*time.Second {
		t.Errorf("the message failed %v after it was sent, want after about 10 s without an answer", d)
	}
	if errs := a.framesReceived("error"); len(errs) != 0 {
		t.Errorf("A received error frames %v, want none (the page's own deadline)", errs)
	}
	resume()
	waitJS[bool](a, 10*time.Second, "sent once its message arrived",
		`(() => { const m = [...document.querySelectorAll("#messages .msg")].at(-1);
		  return m.querySelector(".msg-text").textContent === `+strconv.Quote(late)+` && ["sent", "read"].includes(m.dataset.state) && !m.querySelector(".msg-retry"); })()`)
	waitMessages(b, 2)
	time.Sleep(500 * time.Millisecond)
	for _, p := range []*browser{a, b} {
		if shown := evalJS[[]shownMessage](p, messagesJS); len(shown) != 2 || shown[1].Text != late {
			t.Errorf("%s shows %+v, want [%q, %q] once each", p.name, shown, text, late)
		}
	}
}

// TestBrowserSendsOverPOSTWithoutSocket: a page whose socket cannot open
// sends with POST /api/messages, with the message's clientId in the body,
// and still shows sending… then sent, and YOU; the other page gets it live.
//
// The room is a plain one (made over the API, as curl would): keys travel
// over the socket, so a page without one cannot take part in an end-to-end
// room (it shows that it waits for the other key).
func TestBrowserSendsOverPOSTWithoutSocket(t *testing.T) {
	_, gw, a, b := twoBrowsers(t, nil)

	id, err := client.New(gw).Create(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r := room{id: id, url: gw + "/room/" + id}
	joinRoom(a, r)
	b.withoutWebSockets()
	b.navigate(r.url)
	waitJS[bool](b, 10*time.Second, "B's room page loaded, without a socket",
		`!document.getElementById("messages").hasAttribute("aria-busy") &&
		 document.getElementById("conn-status").textContent === "connecting…"`)
	recordStates(b)

	const text = "by POST"
	sendWithEnter(b, text)
	if got := waitMessages(b, 1); got[0].Sender != "YOU" || !got[0].You {
		t.Errorf("B shows %+v, want its message as YOU", got[0])
	}
	if got := waitMessages(a, 1); got[0].Text != text {
		t.Errorf("A shows %+v", got)
	}
	if states := evalJS[[]string](b, `window.__states[`+strconv.Quote(text)+`] ?? []`); len(states) < 2 || states[0] != "sending" || states[1] != "sent" {
		t.Errorf("B's message went through %v, want sending, sent", states)
	}
	posts := b.postBodies()
	var body struct{ Sender, Text, ClientID string }
	if len(posts) != 1 || json.Unmarshal([]byte(posts[0]), &body) != nil || body.Text != text || !clientIDRE.MatchString(body.ClientID) {
		t.Errorf("B posted %q, want one {sender, text, clientId} with a 22-character base64url clientId", posts)
	}
	if n := len(b.framesSent("send")); n != 0 {
		t.Errorf("B sent %d send frames without a socket", n)
	}

	if n := b.socketCount(); n != 0 {
		t.Errorf("B opened %d sockets", n)
	}
}
