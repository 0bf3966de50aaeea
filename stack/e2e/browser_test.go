package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "time/tzdata" // the browsers' time zones, whatever the machine has

	"github.com/chromedp/chromedp"

	"wisp/stack/client"
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
	s := startStack(t, 1, nil)
	gw := s.Gateways()[0]
	bs := newBrowsers(t, "A", "B")
	a, b := bs[0], bs[1]
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
	if clip := evalJS[string](a, `navigator.clipboard.readText()`, chromedp.EvalAwaitPromise); clip != r.url {
		t.Errorf("clipboard holds %q, want the room's link %q", clip, r.url)
	}
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

// TestBrowserDestroyNowSendsBothHome: DESTROY NOW in one browser sends both
// to the home page with the ROOM DESTROYED banner; the link is dead after.
func TestBrowserDestroyNowSendsBothHome(t *testing.T) {
	s := startStack(t, 1, nil)
	gw := s.Gateways()[0]
	bs := newBrowsers(t, "A", "B")
	a, b := bs[0], bs[1]

	r := createRoom(a, gw)
	joinRoom(b, r)
	sendWithEnter(a, "about to go")
	waitMessages(b, 1)

	b.do(5*time.Second, "click DESTROY NOW", chromedp.Click(chromedp.ID("destroy")))
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
	s := startStack(t, 1, map[string]string{"ROOM_TTL": ttl.String()})
	gw := s.Gateways()[0]
	bs := newBrowsers(t, "A", "B")
	a, b := bs[0], bs[1]

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
			t.Errorf("%s left the room %v before it expired", p.name, early.Sub(time.Now()))
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
	s := startStack(t, 1, nil)
	gw := s.Gateways()[0]
	bs := newBrowsers(t, "A", "B")
	a, b := bs[0], bs[1]

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
	s := startStack(t, 1, nil)
	gw := s.Gateways()[0]
	bs := newBrowsers(t, "A", "B")
	a, b := bs[0], bs[1]
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
	a.do(5*time.Second, "click DESTROY NOW", chromedp.Click(chromedp.ID("destroy")))
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

	p.do(5*time.Second, "click DESTROY NOW", chromedp.Click(chromedp.ID("destroy")))
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
