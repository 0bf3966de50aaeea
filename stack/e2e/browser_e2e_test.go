package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"wisp/testkit"
)

// End-to-end encryption in real browsers: what Redis and NATS see, a relay
// that swaps the keys, a replayed ciphertext, a reload, and what is left in
// the browser once the room is destroyed.

// shareLinkRE matches the room's share link: its URL and, in the fragment,
// the 128-bit fingerprint of the sharer's key.
func shareLinkRE(r room) *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(r.url) + `#fp=[A-Za-z0-9_-]{22}$`)
}

// sealedFrame: a send frame that carries an envelope and nothing in the clear.
func sealedFrame(f map[string]any) bool {
	env, _ := f["envelope"].(string)
	_, sender := f["sender"]
	_, text := f["text"]
	return len(env) > 80 && !sender && !text
}

// shareLinkOf reads the link the page shares (the QR dialog shows it).
func shareLinkOf(b *browser) string {
	b.t.Helper()
	b.do(5*time.Second, "open the QR dialog", chromedp.Click(chromedp.ID("show-qr")))
	link := waitJS[string](b, 5*time.Second, "the QR dialog's link", `document.getElementById("qr-dialog").open && document.getElementById("qr-url").textContent`)
	b.do(5*time.Second, "close the QR dialog", chromedp.Click(chromedp.ID("qr-close")))
	return link
}

type e2eView struct {
	State  string `json:"state"`
	Status string `json:"status"`
	SAS    string `json:"sas"`
	Label  string `json:"label"`
	Alert  bool   `json:"alert"`
	Hash   string `json:"hash"`
}

const e2eViewJS = `(() => { const e = document.getElementById("e2e"), s = document.getElementById("sas");
  return {state: e.dataset.state, status: document.getElementById("e2e-status").textContent, sas: s.textContent,
    label: s.getAttribute("aria-label") ?? "", alert: document.getElementById("e2e-alert").checkVisibility(), hash: location.hash}; })()`

// waitE2E waits until the page's encryption block shows state.
func waitE2E(b *browser, state string) e2eView {
	b.t.Helper()
	return waitJS[e2eView](b, 10*time.Second, "encryption "+state,
		`(() => { const v = `+e2eViewJS+`; return v.state === `+strconv.Quote(state)+` && v; })()`)
}

// monitorRedis records every command Redis receives (MONITOR), until the test ends.
func monitorRedis(t *testing.T, redisURL string) *testkit.SyncBuffer {
	t.Helper()
	return recordConn(t, redisURL, "MONITOR\r\n", "+OK", nil)
}

// tapNATS records everything published on NATS (a plain-protocol
// subscriber on ">"), until the test ends.
func tapNATS(t *testing.T, natsURL string) *testkit.SyncBuffer {
	t.Helper()
	hello := "CONNECT {\"verbose\":false,\"headers\":true,\"no_responders\":true}\r\nSUB > 1\r\nPING\r\n"
	return recordConn(t, natsURL, hello, "PONG", func(line string) string {
		if line == "PING\r\n" {
			return "PONG\r\n" // the server's keep-alive
		}
		return ""
	})
}

// recordConn dials the server of rawURL, says hello, and records every line
// it sends (answering those answer answers) until the test ends; it returns
// once the server has said ready.
func recordConn(t *testing.T, rawURL, hello, ready string, answer func(line string) string) *testkit.SyncBuffer {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rec := &testkit.SyncBuffer{}
	if _, err := c.Write([]byte(hello)); err != nil {
		t.Fatal(err)
	}
	go func() {
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if answer != nil {
				if a := answer(line); a != "" {
					_, _ = c.Write([]byte(a))
				}
			}
			_, _ = rec.Write([]byte(line))
		}
	}()
	testkit.Eventually(t, 5*time.Second, func() error {
		if !strings.Contains(rec.String(), ready) {
			return fmt.Errorf("%s answered %q", u.Scheme, rec.String())
		}
		return nil
	})
	return rec
}

// TestBrowserEndToEnd: two browsers chat in an end-to-end room. The joiner
// opens the creator's link, checks its fingerprint and drops it from the
// address bar; both show the same short authentication string. Redis and
// NATS see neither the texts nor the names. A replayed ciphertext shows as
// rejected on both pages, a reload still reads the history, and after
// DESTROY NOW nothing of the room is left in either browser.
func TestBrowserEndToEnd(t *testing.T) {
	s, gw, a, b := twoBrowsers(t, nil)
	redis := monitorRedis(t, s.RedisURL)
	tap := tapNATS(t, s.NATSURL)

	r := createRoom(a, gw)
	if v := waitE2E(a, "waiting"); v.Status != "waiting for key…" || v.Alert {
		t.Errorf("A alone: %+v", v)
	}
	link := shareLinkOf(a)
	if !shareLinkRE(r).MatchString(link) {
		t.Fatalf("A shares %q, want %s#fp=<fingerprint>", link, r.url)
	}
	sockets := b.socketCount()
	b.navigate(link)
	waitRoomReady(b, r, sockets)

	va, vb := waitE2E(a, "ready"), waitE2E(b, "ready")
	if vb.Hash != "" {
		t.Errorf("the fingerprint stays in B's address bar: %q", vb.Hash)
	}
	if vb.Status != "end-to-end ✓ link" || va.Status != "end-to-end" {
		t.Errorf("A says %q, B says %q; want B to have checked A's key against the link", va.Status, vb.Status)
	}
	if va.SAS == "" || va.SAS != vb.SAS || len(strings.Fields(va.SAS)) != 7 || !strings.HasPrefix(va.Label, "Safety code: ") {
		t.Errorf("short authentication strings: A %q (%q), B %q", va.SAS, va.Label, vb.SAS)
	}
	a.screenshot("room-e2e-desktop")

	nameA := evalJS[string](a, `localStorage.getItem("chat_username")`)
	nameB := evalJS[string](b, `localStorage.getItem("chat_username")`)
	const fromA, fromB = "PLAINTEXT-canary-from-A meet at nine", "PLAINTEXT-canary-from-B bring the map"
	since := time.Now()
	sendWithEnter(a, fromA)
	got := waitMessages(b, 1)
	checkMessage(t, b, got[0], nameA, false, fromA, since)
	sendWithButton(b, fromB)
	gotA := waitMessages(a, 2)
	checkMessage(t, a, gotA[0], "YOU", true, fromA, since)
	checkMessage(t, a, gotA[1], nameB, false, fromB, since)
	for _, f := range a.framesSent("send") {
		if !sealedFrame(f) {
			t.Errorf("A sent %v, want an envelope and nothing in the clear", f)
		}
	}

	// B reloads: its keys are still there, the history reads as before.
	sockets = b.socketCount()
	b.navigate(r.url)
	waitRoomReady(b, r, sockets)
	waitE2E(b, "ready")
	gotB := waitMessages(b, 2)
	checkMessage(t, b, gotB[0], nameA, false, fromA, since)
	checkMessage(t, b, gotB[1], "YOU", true, fromB, since)

	// The server (here: anyone holding A's cookie) stores A's first
	// ciphertext again: both pages reject the copy.
	replay := evalJS[string](a, `(async () => {
	  const list = await (await fetch("/api/messages?roomId=`+r.id+`")).json();
	  const res = await fetch("/api/messages?roomId=`+r.id+`", {method: "POST", headers: {"Content-Type": "application/json"},
	    body: JSON.stringify({envelope: list.messages[0].envelope, clientId: "replayed-copy"})});
	  return res.status + " " + list.messages[0].envelope.length; })()`, chromedp.EvalAwaitPromise)
	if !strings.HasPrefix(replay, "200 ") {
		t.Fatalf("storing the copy: %s", replay)
	}
	for _, p := range []*browser{a, b} {
		shown := waitMessages(p, 3)
		if last := shown[2]; last.Text != "⚠ Rejected: a replayed copy of an earlier message." {
			t.Errorf("%s shows the replayed copy as %+v", p.name, last)
		}
		if n := evalJS[int](p, `document.querySelectorAll('#messages .msg[data-sealed="replayed"]').length`); n != 1 {
			t.Errorf("%s marks %d messages replayed", p.name, n)
		}
	}
	b.screenshot("room-e2e-replayed-desktop")

	// What Redis and NATS saw: ciphertext, never a text or a name.
	testkit.Eventually(t, 5*time.Second, func() error { // the replay is the last thing both saw
		if !strings.Contains(redis.String(), "replayed-copy") || !strings.Contains(tap.String(), `"seq":3`) {
			return fmt.Errorf("the recorders have not seen the replayed copy yet")
		}
		return nil
	})
	seenRedis, seenNATS := redis.String(), tap.String()
	if !strings.Contains(seenRedis, "envelope") || !strings.Contains(seenNATS, "chat.message."+r.id) {
		t.Fatalf("the recorders saw no messages: redis %d bytes, nats %d bytes", len(seenRedis), len(seenNATS))
	}
	for _, secret := range []string{"PLAINTEXT-canary", "meet at nine", "bring the map", nameA, nameB} {
		if strings.Contains(seenRedis, secret) {
			t.Errorf("Redis received %q", secret)
		}
		if strings.Contains(seenNATS, secret) {
			t.Errorf("NATS carried %q", secret)
		}
	}

	// DESTROY NOW: both go home, and neither browser keeps anything of the room.
	destroyNow(a)
	for _, p := range []*browser{a, b} {
		waitHome(p, 10*time.Second, "banner-destroyed")
		left := browserStorage(p)
		if len(left.Local) != 1 || left.Local[0] != "chat_username" || len(left.Session) != 0 || len(left.Records) != 0 ||
			len(left.Caches) != 0 || strings.Contains(left.Cookies, r.id) {
			t.Errorf("%s keeps %+v after DESTROY NOW", p.name, left)
		}
	}
}

type storageLeft struct {
	Local   []string `json:"local"`
	Session []string `json:"session"`
	DBs     []string `json:"dbs"`
	Records []string `json:"records"`
	Caches  []string `json:"caches"`
	Cookies string   `json:"cookies"`
}

// browserStorage lists what the page's origin keeps: localStorage and
// sessionStorage keys, every IndexedDB record, Cache Storage, and the
// cookies (HttpOnly ones too, through the browser).
func browserStorage(b *browser) storageLeft {
	b.t.Helper()
	left := evalJS[storageLeft](b, `(async () => {
	  const out = {local: Object.keys(localStorage), session: Object.keys(sessionStorage), dbs: [], records: [], caches: await caches.keys()};
	  for (const d of await indexedDB.databases()) {
	    out.dbs.push(d.name);
	    const db = await new Promise((res, rej) => { const q = indexedDB.open(d.name); q.onsuccess = () => res(q.result); q.onerror = () => rej(q.error); });
	    for (const name of db.objectStoreNames) {
	      const all = await new Promise((res) => { const q = db.transaction(name).objectStore(name).getAll(); q.onsuccess = () => res(q.result); });
	      for (const rec of all) out.records.push(d.name + "/" + name + ": " + (rec.roomId ?? JSON.stringify(Object.keys(rec))));
	    }
	    db.close();
	  }
	  return out; })()`, chromedp.EvalAwaitPromise)
	left.Cookies = strings.Join(cookieNames(b), " ")
	return left
}

// cookieNames lists every cookie the browser holds, HttpOnly ones too.
func cookieNames(b *browser) []string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{})
	if err != nil {
		b.fail("cookies: %v", err)
	}
	var out []string
	for _, c := range res.Cookies {
		out = append(out, c.Name)
	}
	return out
}

// keySwapper is a man in the middle between the browsers and a gateway: it
// passes everything on, but hands each page a public key of its own in
// place of the other member's (in the chat.key frames the gateway sends).
type keySwapper struct {
	t     *testing.T
	gw    *url.URL
	mu    sync.Mutex
	fakes map[string]string // real key -> the relay's key
	swaps int
}

func startKeySwapper(t *testing.T, gw string) (string, *keySwapper) {
	t.Helper()
	u, err := url.Parse(gw)
	if err != nil {
		t.Fatal(err)
	}
	p := &keySwapper{t: t, gw: u, fakes: map[string]string{}}
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(u)
		pr.Out.Host = pr.In.Host // the pages' origin is the relay's
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/realtime" {
			p.socket(w, r)
			return
		}
		proxy.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String(), p
}

// socket relays one WebSocket: the upgrade and the client's frames as they
// are, the gateway's frames one by one, chat.key rewritten.
func (p *keySwapper) socket(w http.ResponseWriter, r *http.Request) {
	up, err := net.Dial("tcp", p.gw.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer up.Close()
	client, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	defer client.Close()
	if err := r.Write(up); err != nil {
		return
	}
	fromGW := bufio.NewReader(up)
	for { // the answer's head, as it is
		line, err := fromGW.ReadString('\n')
		if err != nil {
			return
		}
		if _, err := client.Write([]byte(line)); err != nil || line == "\r\n" {
			break
		}
	}
	go func() {
		_, _ = io.Copy(up, buf.Reader)
		_ = up.Close()
	}()
	for {
		op, payload, err := readServerFrame(fromGW)
		if err != nil {
			return
		}
		if op == 1 && bytes.Contains(payload, []byte(`"event":"chat.key"`)) {
			payload = p.swap(payload)
		}
		if _, err := client.Write(serverFrame(op, payload)); err != nil {
			return
		}
	}
}

// swap puts the relay's own key (one per real key) in a chat.key frame.
func (p *keySwapper) swap(frame []byte) []byte {
	var f struct {
		Event string            `json:"event"`
		Data  map[string]string `json:"data"`
	}
	if json.Unmarshal(frame, &f) != nil {
		return frame
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	real := f.Data["key"]
	fake, ok := p.fakes[real]
	if !ok {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			p.t.Error(err)
			return frame
		}
		fake = base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes())
		p.fakes[real] = fake
	}
	f.Data["key"] = fake
	p.swaps++
	out, _ := json.Marshal(f) // a map of strings always encodes
	return out
}

func (p *keySwapper) swapped() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.swaps
}

// readServerFrame reads one unmasked frame as the gateway writes them.
func readServerFrame(r *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err = io.ReadFull(r, ext[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err = io.ReadFull(r, ext[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if h[0]&0x80 == 0 || h[1]&0x80 != 0 || n > 1<<20 {
		return 0, nil, fmt.Errorf("unexpected frame header %x", h)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(r, payload)
	return h[0] & 0x0f, payload, err
}

// serverFrame encodes one final, unmasked frame.
func serverFrame(op byte, payload []byte) []byte {
	out := []byte{0x80 | op}
	switch n := len(payload); {
	case n < 126:
		out = append(out, byte(n))
	case n <= 0xffff:
		out = append(out, 126, byte(n>>8), byte(n))
	default:
		out = append(out, 127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	return append(out, payload...)
}

// TestBrowserEndToEndKeySwap: a relay between the browsers and the gateway
// hands each page a key of its own in place of the other's. The joiner sees
// that the key is not the link's, the creator that the joiner holds another
// key for it: both show KEY MISMATCH, their safety codes differ, and
// nothing is sent until the person chooses.
func TestBrowserEndToEndKeySwap(t *testing.T) {
	s, gw, a, b := twoBrowsers(t, nil)
	redis := monitorRedis(t, s.RedisURL)
	relay, swapper := startKeySwapper(t, gw)

	r := createRoom(a, relay)
	link := shareLinkOf(a)
	sockets := b.socketCount()
	b.navigate(link)
	waitRoomReady(b, r, sockets)

	va, vb := waitE2E(a, "mismatch"), waitE2E(b, "mismatch")
	if !va.Alert || !vb.Alert || va.Status != "KEY MISMATCH" || vb.Status != "KEY MISMATCH" {
		t.Errorf("A shows %+v, B %+v; want KEY MISMATCH and the alert on both", va, vb)
	}
	if va.SAS == "" || va.SAS == vb.SAS {
		t.Errorf("safety codes A %q, B %q: they must differ under a swapped key", va.SAS, vb.SAS)
	}
	alerts := map[*browser]string{}
	for _, p := range []*browser{a, b} {
		alerts[p] = evalJS[string](p, `document.getElementById("e2e-alert-text").textContent`)
	}
	if alerts[b] != "The key this page received is not the one the room link names." ||
		alerts[a] != "The other person's page holds a different key for you than yours." {
		t.Errorf("the alerts say: A %q, B %q", alerts[a], alerts[b])
	}
	if n := swapper.swapped(); n < 2 {
		t.Errorf("the relay swapped %d keys, want both members'", n)
	}
	a.screenshot("room-e2e-mismatch-desktop")

	// Sending is blocked: Enter and SEND do nothing, the draft stays.
	for _, p := range []*browser{a, b} {
		p.do(10*time.Second, "type and press Enter", chromedp.SendKeys(chromedp.ID("message-input"), "under a swapped key\n"))
		state := evalJS[string](p, `document.getElementById("message-input").value + "|" + document.getElementById("send").disabled`)
		if state != "under a swapped key|true" {
			t.Errorf("%s: input|send disabled = %q, want the draft kept and SEND off", p.name, state)
		}
	}
	time.Sleep(500 * time.Millisecond) // a send would be on its way by now
	for _, p := range []*browser{a, b} {
		if n := len(p.framesSent("send")); n != 0 || len(evalJS[[]shownMessage](p, messagesJS)) != 0 {
			t.Errorf("%s sent %d frames under a swapped key", p.name, n)
		}
		if n := p.requestCount("POST ", "/api/messages"); n != 0 {
			t.Errorf("%s posted %d messages under a swapped key", p.name, n)
		}
	}
	if strings.Contains(redis.String(), "RPUSH") {
		t.Error("Redis stored a message under a swapped key")
	}
}
