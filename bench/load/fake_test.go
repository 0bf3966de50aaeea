package load

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/fasthttp/websocket"
)

// fakeGateway speaks the part of wisp's HTTP API and WebSocket protocol
// the generator uses (room create, room page with a cookie, POST
// /api/messages, /api/realtime with send → ack/error, chat.message to
// every socket of the room, chat.presence on upgrade), and misbehaves on
// request for chosen message numbers (the i of clientId "b<i>").
type fakeGateway struct {
	srv      *httptest.Server
	upgrader websocket.Upgrader

	mu    sync.Mutex
	rooms map[string]*fakeRoom
	n     int
	// where each member's requests came from: token → remote addresses
	httpFrom map[string]map[string]bool
	wsFrom   map[string]map[string]bool

	// faults, by message number
	drop     map[int]bool // stored and acknowledged, never sent to the other member
	dup      map[int]bool // sent to the other member twice
	reject   map[int]int  // answered with this status, not stored
	lateFail map[int]int  // stored and delivered, but answered with this status
	badSeq   map[int]bool // acknowledged with a seq other than the stored one
	reack    map[int]bool // acknowledged twice (socket sends)
}

type fakeRoom struct {
	seq     int64
	socks   map[*fakeSock]bool
	stored  map[string]fakeMsg // token|clientId → message (idempotency)
	members int
}

type fakeMsg struct {
	json []byte // the Message without token
	seq  int64
	num  int
}

// fakeSock is in its room from before the upgrade, as the real gateway's
// socket is (it gets every event from the moment the 101 is out): frames
// for it wait in pending until the connection is there.
type fakeSock struct {
	mu      sync.Mutex
	conn    *websocket.Conn
	pending [][]byte
	token   string
}

func (s *fakeSock) write(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		s.pending = append(s.pending, append([]byte(nil), b...))
		return
	}
	_ = s.conn.WriteMessage(websocket.TextMessage, b)
}

func (s *fakeSock) attach(conn *websocket.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn = conn
	for _, b := range s.pending {
		_ = conn.WriteMessage(websocket.TextMessage, b)
	}
	s.pending = nil
}

var roomPage = []byte("<html>" + strings.Repeat("<p>room</p>\n", 1000) + "</html>")

func newFakeGateway(t *testing.T) *fakeGateway {
	f := &fakeGateway{rooms: map[string]*fakeRoom{}, httpFrom: map[string]map[string]bool{}, wsFrom: map[string]map[string]bool{},
		drop: map[int]bool{}, dup: map[int]bool{}, reject: map[int]int{}, lateFail: map[int]int{}, badSeq: map[int]bool{}, reack: map[int]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/room/create", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.n++
		id := fmt.Sprintf("room%d", f.n)
		f.rooms[id] = &fakeRoom{socks: map[*fakeSock]bool{}, stored: map[string]fakeMsg{}}
		f.mu.Unlock()
		fmt.Fprintf(w, `{"roomId":%q}`, id)
	})
	mux.HandleFunc("GET /room/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		f.mu.Lock()
		defer f.mu.Unlock()
		room := f.rooms[id]
		if room == nil {
			http.NotFound(w, r)
			return
		}
		room.members++
		token := fmt.Sprintf("%s-m%d", id, room.members)
		f.saw(f.httpFrom, token, r.RemoteAddr)
		http.SetCookie(w, &http.Cookie{Name: "wisp_" + id, Value: token, Path: "/"})
		_, _ = w.Write(roomPage) // larger than the client's read buffer, as the real page is
	})
	mux.HandleFunc("POST /api/messages", func(w http.ResponseWriter, r *http.Request) {
		id, token, ok := f.member(r)
		if !ok {
			http.Error(w, `{"error":"Unauthorized"}`, http.StatusUnauthorized)
			return
		}
		var body struct{ ClientID, Sender, Text string }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.ClientID == "" {
			http.Error(w, `{"error":"bad body"}`, http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.saw(f.httpFrom, token, r.RemoteAddr)
		f.mu.Unlock()
		msg, status := f.store(id, token, body.ClientID, body.Sender, body.Text)
		if status != http.StatusOK {
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":"status %d"}`, status)
			return
		}
		_, _ = w.Write(msg)
	})
	mux.HandleFunc("GET /api/realtime", func(w http.ResponseWriter, r *http.Request) {
		id, token, ok := f.member(r)
		if !ok {
			http.Error(w, `{"error":"Unauthorized"}`, http.StatusUnauthorized)
			return
		}
		s := &fakeSock{token: token}
		f.mu.Lock()
		f.saw(f.wsFrom, token, r.RemoteAddr)
		f.rooms[id].socks[s] = true
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			delete(f.rooms[id].socks, s)
			f.mu.Unlock()
		}()
		s.write([]byte(`{"event":"chat.presence","data":{"online":true}}`))
		conn, err := f.upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		s.attach(conn)
		for {
			_, b, err := conn.ReadMessage()
			if err != nil {
				return
			}
			var fr struct{ Type, ClientID, Sender, Text string }
			if json.Unmarshal(b, &fr) != nil || fr.Type != "send" {
				return
			}
			msg, status := f.store(id, token, fr.ClientID, fr.Sender, fr.Text)
			if status != http.StatusOK {
				s.write(fmt.Appendf(nil, `{"event":"error","data":{"clientId":%q,"status":%d,"error":"no"}}`, fr.ClientID, status))
				continue
			}
			ack := fmt.Appendf(nil, `{"event":"ack","data":{"clientId":%q,"message":%s}}`, fr.ClientID, msg)
			s.write(ack)
			if f.reack[numberIn([]byte(fr.ClientID), 'b')] {
				s.write(ack)
			}
		}
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeGateway) saw(m map[string]map[string]bool, token, addr string) {
	if m[token] == nil {
		m[token] = map[string]bool{}
	}
	m[token][addr] = true
}

func (f *fakeGateway) member(r *http.Request) (id, token string, ok bool) {
	id = r.URL.Query().Get("roomId")
	c, err := r.Cookie("wisp_" + id)
	if err != nil || r.Header.Get("Origin") == "" && r.Method == http.MethodPost {
		return "", "", false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return id, c.Value, f.rooms[id] != nil
}

// store keeps a message once per member and clientId, sends chat.message
// to the room's sockets and returns the caller's copy (with token) and the
// status to answer.
func (f *fakeGateway) store(id, token, clientID, sender, text string) ([]byte, int) {
	num := numberIn([]byte(clientID), 'b')
	f.mu.Lock()
	if st := f.reject[num]; st != 0 {
		f.mu.Unlock()
		return nil, st
	}
	room := f.rooms[id]
	key := token + "|" + clientID
	m, seen := room.stored[key]
	if !seen {
		room.seq++
		m = fakeMsg{seq: room.seq, num: num}
		m.json = fmt.Appendf(nil, `{"id":"m%d","seq":%d,"sender":%q,"text":%q,"timestamp":1,"roomId":%q`, m.seq, m.seq, sender, text, id)
		room.stored[key] = m
	}
	var targets []*fakeSock
	for s := range room.socks {
		targets = append(targets, s)
	}
	f.mu.Unlock()
	if !seen {
		event := append(append([]byte(`{"event":"chat.message","data":`), m.json...), "}}"...)
		for _, s := range targets {
			other := s.token != token
			if other && f.drop[num] {
				continue
			}
			s.write(event)
			if other && f.dup[num] {
				s.write(event)
			}
		}
	}
	own := m.json
	if f.badSeq[num] {
		own = []byte(strings.Replace(string(own), fmt.Sprintf(`"seq":%d,`, m.seq), fmt.Sprintf(`"seq":%d,`, m.seq+1000), 1))
	}
	own = fmt.Appendf(append([]byte(nil), own...), `,"token":"marker"}`)
	if st := f.lateFail[num]; st != 0 {
		return nil, st
	}
	return own, http.StatusOK
}

// connections returns, per member token, how many distinct client
// connections (ip:port) its HTTP requests and its socket came from, and
// the client IPs they used.
func (f *fakeGateway) connections() (httpConns, wsConns map[string]int, ips map[string]map[string]bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	httpConns, wsConns, ips = map[string]int{}, map[string]int{}, map[string]map[string]bool{}
	for token, addrs := range f.httpFrom {
		httpConns[token] = len(addrs)
		for a := range addrs {
			f.saw(ips, token, hostOf(a))
		}
	}
	for token, addrs := range f.wsFrom {
		wsConns[token] = len(addrs)
		for a := range addrs {
			f.saw(ips, token, hostOf(a))
		}
	}
	return httpConns, wsConns, ips
}

// membersPerConn is how many members' requests each HTTP connection
// carried.
func (f *fakeGateway) membersPerConn() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := map[string]int{}
	for _, addrs := range f.httpFrom {
		for a := range addrs {
			n[a]++
		}
	}
	return n
}

func hostOf(addr string) string {
	h, _, _ := net.SplitHostPort(addr)
	return h
}
