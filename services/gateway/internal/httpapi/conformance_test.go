package httpapi_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // RFC 6455 §4.2.2 defines Sec-WebSocket-Accept with SHA-1
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"wisp/contract"
	"wisp/services/gateway/internal/httpapi"
)

const (
	// confDeadline bounds each case: a correct server answers every case
	// within milliseconds, so one that hangs fails the case, not the run.
	confDeadline = 5 * time.Second
	// confEndWait is how long the connection may stay open after the
	// server's close frame (RFC 6455 5.5.1: once both closes have crossed,
	// the server must close the TCP connection).
	confEndWait = 3 * time.Second
	confProbe   = "probe: a server that failed the connection never answers this"
)

// TestConformance checks the realtime socket against RFC 6455 with table
// tests: the cases of the Autobahn testsuite's groups 1–7 and 9 that apply
// to a server that does not echo, ported to what docs/WEBSOCKET.md
// specifies, run against the real gateway over raw TCP (the upgrade done by
// hand, frames crafted with github.com/gobwas/ws, bytes by hand where a
// frame must be malformed).
//
// A server that does not echo shows two things:
//   - a close: the close frame it sends (its code), then the end of the TCP
//     connection, and nothing in between; the lingers-* cases also want
//     that end to be clean (FIN, not a reset from unread data);
//   - a healthy socket: a ping is answered by a pong with the same payload
//     (each ping in order), and a message posted through the HTTP API
//     arrives as a chat.message frame.
//
// A case that expects a close sends one more ping (the probe) after its
// frames, unless it sent a close itself: a server that answers it has gone
// on reading after the frame it had to fail the connection on, which RFC
// 6455 7.1.7 forbids, so the case fails at once instead of waiting out its
// deadline. Where docs/WEBSOCKET.md is silent the RFC decides:
//   - a client's close is answered with its own code (5.5.1: "typically
//     echoes the status code it received"); a close without a code with a
//     close without a code or 1000;
//   - valid close codes are 1000–1003, 1007–1014 (1012–1014 from the IANA
//     registry) and 3000–4999; anything else is a protocol error (7.4);
//   - a text message is checked as UTF-8 before it is parsed as JSON, so
//     invalid UTF-8 inside an otherwise valid JSON string closes with 1007
//     (8.1), and an empty text message, which is not a JSON object, with 1008.
func TestConformance(t *testing.T) {
	// Rate limits off: cases send hundreds of frames a second, and each case
	// has its own room (and socket) on this one gateway.
	gw, _, _ := world(t, httpapi.Config{RateLimits: false})
	groups := []struct {
		name  string
		cases []confCase
	}{
		{"1-framing", confFraming()},
		{"2-ping-pong", confPingPong()},
		{"3-reserved-bits", confReservedBits()},
		{"4-opcodes", confOpcodes()},
		{"5-fragmentation", confFragmentation()},
		{"6-utf8", confUTF8()},
		{"7-close", confClosing()},
		{"9-limits", confLimits()},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, c := range g.cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.check(confOpen(t, gw))
				})
			}
		})
	}
}

// confCase sends its frames and expects a close with want, or (want 0) a
// socket that stays healthy; run replaces both for cases that need more.
type confCase struct {
	name string
	send [][]byte      // frames (or crafted bytes), back to back in one write
	chop int           // > 0: written chop bytes at a time, a millisecond apart
	gap  time.Duration // > 0: each element of send written on its own, gap apart
	want ws.StatusCode
	run  func(s *confSocket)
}

func (c confCase) check(s *confSocket) {
	if c.run != nil {
		c.run(s)
		return
	}
	s.send(c.send, c.chop, c.gap)
	if c.want == 0 {
		s.expectOpen()
	} else {
		s.expectClose(c.want)
	}
}

// Group 1 (Autobahn 1.1, 1.2): text messages of every size class up to the
// 16 KiB limit, binary messages (the protocol is text only), and masking.
func confFraming() []confCase {
	var cs []confCase
	for _, n := range []int{17, 125, 126, 127, 128, 4096, 4097, 16383, 16384} {
		cs = append(cs, confCase{name: fmt.Sprintf("text-%d-bytes", n), send: [][]byte{cfText(cfTyping(n))}})
	}
	unmasked := func(op ws.OpCode, fin bool, p []byte) []byte {
		return cfCraft(ws.Header{Fin: fin, OpCode: op, Length: int64(len(p))}, p)
	}
	return append(cs,
		confCase{name: "text-16384-bytes-chopped", send: [][]byte{cfText(cfTyping(16384))}, chop: 997},
		confCase{name: "text-three-in-one-write", send: [][]byte{cfText(cfTyping(17)), cfText(cfTyping(1000)), cfText(cfTyping(16384))}},
		confCase{name: "text-0-bytes", send: [][]byte{cfText(nil)}, want: ws.StatusPolicyViolation},
		confCase{name: "binary-0-bytes", send: [][]byte{cfFrame(ws.OpBinary, true, nil)}, want: ws.StatusUnsupportedData},
		confCase{name: "binary-125-bytes", send: [][]byte{cfFrame(ws.OpBinary, true, bytes.Repeat([]byte{0xfe}, 125))}, want: ws.StatusUnsupportedData},
		confCase{name: "binary-16384-bytes", send: [][]byte{cfFrame(ws.OpBinary, true, bytes.Repeat([]byte{0xfe}, 16384))}, want: ws.StatusUnsupportedData},
		confCase{name: "binary-fragmented", send: [][]byte{cfFrame(ws.OpBinary, false, []byte{1, 2}), cfFrame(ws.OpContinuation, true, []byte{3})}, want: ws.StatusUnsupportedData},
		confCase{name: "unmasked-text", send: [][]byte{unmasked(ws.OpText, true, cfTyping(17))}, want: ws.StatusProtocolError},
		confCase{name: "unmasked-ping", send: [][]byte{unmasked(ws.OpPing, true, []byte("bare"))}, want: ws.StatusProtocolError},
		confCase{name: "unmasked-continuation", send: [][]byte{cfFrame(ws.OpText, false, cfTyping(40)[:20]), unmasked(ws.OpContinuation, true, cfTyping(40)[20:])}, want: ws.StatusProtocolError},
		confCase{name: "unmasked-close", send: [][]byte{unmasked(ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))}, want: ws.StatusProtocolError},
	)
}

// Group 2 (Autobahn 2.x): pings are answered with their payload, in order;
// unsolicited pongs are ignored; control frames are at most 125 bytes.
func confPingPong() []confCase {
	var ten [][]byte
	for i := range 10 {
		ten = append(ten, cfPing(fmt.Sprintf("ping %d", i)))
	}
	return []confCase{
		{name: "ping-empty", send: [][]byte{cfPing("")}},
		{name: "ping-text-payload", send: [][]byte{cfPing("Hello, world!")}},
		{name: "ping-binary-payload", send: [][]byte{cfPing("\x00\xff\xfe\xfd\xfc\xfb\x00\xff")}},
		{name: "ping-125-bytes", send: [][]byte{cfPing(strings.Repeat("\xfe", 125))}},
		{name: "ping-125-bytes-chopped", send: [][]byte{cfPing(strings.Repeat("*", 125))}, chop: 1},
		{name: "ping-126-bytes", send: [][]byte{cfPing(strings.Repeat("*", 126))}, want: ws.StatusProtocolError},
		{name: "ping-fragmented", send: [][]byte{cfFrame(ws.OpPing, false, []byte("frag 1")), cfFrame(ws.OpContinuation, true, []byte("frag 2"))}, want: ws.StatusProtocolError},
		{name: "pong-unsolicited-empty", send: [][]byte{cfFrame(ws.OpPong, true, nil)}},
		{name: "pong-unsolicited-payload", send: [][]byte{cfFrame(ws.OpPong, true, []byte("unsolicited"))}},
		{name: "pong-unsolicited-then-ping", send: [][]byte{cfFrame(ws.OpPong, true, []byte("unsolicited")), cfPing("solicited")}},
		{name: "ping-10-in-one-write", send: ten},
		{name: "ping-10-chopped", send: ten, chop: 1},
	}
}

// Group 3 (Autobahn 3.x): no extension is negotiated, so any reserved bit
// is a protocol error, on any frame.
func confReservedBits() []confCase {
	rsv := func(op ws.OpCode, fin bool, bits byte, p []byte) []byte {
		return cfCraft(ws.Header{Fin: fin, Rsv: bits, OpCode: op, Length: int64(len(p)), Masked: true, Mask: ws.NewMask()}, p)
	}
	var cs []confCase
	for bits := byte(1); bits <= 7; bits++ {
		cs = append(cs, confCase{name: fmt.Sprintf("text-rsv-%d", bits), send: [][]byte{rsv(ws.OpText, true, bits, cfTyping(17))}, want: ws.StatusProtocolError})
	}
	msg := cfTyping(40)
	return append(cs,
		confCase{name: "text-rsv-2-after-valid-text", send: [][]byte{cfText(cfTyping(17)), rsv(ws.OpText, true, 2, cfTyping(17))}, want: ws.StatusProtocolError},
		confCase{name: "text-rsv-3-then-ping", send: [][]byte{cfText(cfTyping(17)), rsv(ws.OpText, true, 3, cfTyping(17)), cfPing("after")}, want: ws.StatusProtocolError},
		confCase{name: "text-rsv-4-chopped", send: [][]byte{cfText(cfTyping(17)), rsv(ws.OpText, true, 4, cfTyping(17)), cfPing("after")}, chop: 1, want: ws.StatusProtocolError},
		confCase{name: "binary-rsv-5", send: [][]byte{rsv(ws.OpBinary, true, 5, []byte{0, 1, 2})}, want: ws.StatusProtocolError},
		confCase{name: "ping-rsv-6", send: [][]byte{rsv(ws.OpPing, true, 6, []byte("rsv"))}, want: ws.StatusProtocolError},
		confCase{name: "close-rsv-7", send: [][]byte{rsv(ws.OpClose, true, 7, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))}, want: ws.StatusProtocolError},
		confCase{name: "continuation-rsv-1", send: [][]byte{cfFrame(ws.OpText, false, msg[:20]), rsv(ws.OpContinuation, true, 1, msg[20:])}, want: ws.StatusProtocolError},
	)
}

// Group 4 (Autobahn 4.1, 4.2): reserved opcodes, data (3–7) and control
// (0xB–0xF), alone or between valid frames.
func confOpcodes() []confCase {
	var cs []confCase
	for _, op := range []ws.OpCode{3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf} {
		cs = append(cs,
			confCase{name: fmt.Sprintf("opcode-%#x-empty", byte(op)), send: [][]byte{cfFrame(op, true, nil)}, want: ws.StatusProtocolError},
			confCase{name: fmt.Sprintf("opcode-%#x-between-text-and-ping", byte(op)),
				send: [][]byte{cfText(cfTyping(17)), cfFrame(op, true, []byte("reserved")), cfPing("after")}, want: ws.StatusProtocolError},
		)
	}
	return append(cs,
		confCase{name: "opcode-0x7-chopped", send: [][]byte{cfText(cfTyping(17)), cfFrame(7, true, []byte("reserved")), cfPing("after")}, chop: 1, want: ws.StatusProtocolError},
		confCase{name: "opcode-0xf-chopped", send: [][]byte{cfText(cfTyping(17)), cfFrame(0xf, true, []byte("reserved")), cfPing("after")}, chop: 1, want: ws.StatusProtocolError},
	)
}

// Group 5 (Autobahn 5.x): fragmented messages with control frames between
// their fragments are fine; fragmented control frames, continuations with
// nothing to continue and a new message inside an open one are not.
func confFragmentation() []confCase {
	msg := cfTyping(300)
	frag := func(op ws.OpCode, fin bool, p []byte) []byte { return cfFrame(op, fin, p) }
	five := func(pings bool) [][]byte {
		var out [][]byte
		for i := range 5 {
			op := ws.OpContinuation
			if i == 0 {
				op = ws.OpText
			}
			out = append(out, frag(op, i == 4, msg[i*60:(i+1)*60]))
			if pings && (i == 1 || i == 3) {
				out = append(out, cfPing(fmt.Sprintf("between %d and %d", i, i+1)))
			}
		}
		return out
	}
	halves := [][]byte{frag(ws.OpText, false, msg[:150]), frag(ws.OpContinuation, true, msg[150:])}
	withPing := [][]byte{halves[0], cfPing("between the halves"), halves[1]}
	return []confCase{
		{name: "text-in-2-fragments", send: halves},
		{name: "text-in-2-fragments-chopped", send: halves, chop: 1},
		{name: "text-in-2-fragments-ping-between", send: withPing},
		{name: "text-in-2-fragments-ping-between-chopped", send: withPing, chop: 1},
		{name: "text-in-2-fragments-pong-between", send: [][]byte{halves[0], cfFrame(ws.OpPong, true, []byte("unsolicited")), halves[1]}},
		{name: "text-in-5-fragments", send: five(false)},
		{name: "text-in-5-fragments-2-pings-paced", send: five(true), gap: 20 * time.Millisecond},
		{name: "text-in-5-fragments-2-pings-paced-chopped", send: five(true), gap: 20 * time.Millisecond, chop: 7},
		{name: "text-empty-first-and-last-fragments", send: [][]byte{frag(ws.OpText, false, nil), frag(ws.OpContinuation, false, msg), frag(ws.OpContinuation, true, nil)}},
		{name: "pong-in-2-fragments", send: [][]byte{frag(ws.OpPong, false, []byte("frag 1")), frag(ws.OpContinuation, true, []byte("frag 2"))}, want: ws.StatusProtocolError},
		{name: "close-in-2-fragments", send: [][]byte{frag(ws.OpClose, false, []byte{0x03}), frag(ws.OpContinuation, true, []byte{0xe8})}, want: ws.StatusProtocolError},
		{name: "ping-fragment-inside-text", send: [][]byte{halves[0], frag(ws.OpPing, false, []byte("frag 1")), frag(ws.OpContinuation, true, msg[150:])}, want: ws.StatusProtocolError},
		{name: "continuation-fin-nothing-to-continue", send: [][]byte{frag(ws.OpContinuation, true, msg)}, want: ws.StatusProtocolError},
		{name: "continuation-not-fin-nothing-to-continue", send: [][]byte{frag(ws.OpContinuation, false, msg)}, want: ws.StatusProtocolError},
		{name: "continuation-nothing-to-continue-chopped", send: [][]byte{frag(ws.OpContinuation, true, msg)}, chop: 1, want: ws.StatusProtocolError},
		{name: "continuations-then-text", send: [][]byte{frag(ws.OpContinuation, false, msg[:150]), frag(ws.OpContinuation, true, msg[150:]), cfText(msg)}, want: ws.StatusProtocolError},
		{name: "continuation-after-complete-message", send: [][]byte{halves[0], halves[1], frag(ws.OpContinuation, false, msg[:150]), frag(ws.OpContinuation, true, msg[150:])}, want: ws.StatusProtocolError},
		{name: "text-while-text-open", send: [][]byte{halves[0], cfText(msg)}, want: ws.StatusProtocolError},
		{name: "text-fragment-while-text-open-after-ping", send: [][]byte{halves[0], cfPing("between"), frag(ws.OpText, false, msg[:150])}, want: ws.StatusProtocolError},
		{name: "binary-while-text-open", send: [][]byte{halves[0], frag(ws.OpBinary, true, []byte{1})}, want: ws.StatusProtocolError},
	}
}

// Group 6 (Autobahn 6.x): text is UTF-8, checked over the whole message,
// so a sequence split between fragments is still one sequence.
func confUTF8() []confCase {
	valid := []struct{ name, s string }{
		{"hello-umlauts", "Hello-µ@ßöäüàá-UTF-8!!"},
		{"kosme", "κόσμε"},
		{"emoji", "😀 wisp 🔥"},
		{"first-2-byte-U+0080", "\u0080"},
		{"first-3-byte-U+0800", "\u0800"},
		{"first-4-byte-U+10000", "\U00010000"},
		{"last-1-byte-U+007F", "\u007f"},
		{"last-2-byte-U+07FF", "\u07ff"},
		{"last-3-byte-U+FFFF", "\uffff"},
		{"last-4-byte-U+10FFFF", "\U0010ffff"},
		{"before-surrogates-U+D7FF", "\ud7ff"},
		{"after-surrogates-U+E000", "\ue000"},
		{"replacement-U+FFFD", "\ufffd"},
		{"noncharacter-U+FFFE", "\ufffe"},
	}
	invalid := []struct{ name, s string }{
		{"kosme-then-surrogate", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"},
		{"overlong-slash-2-bytes", "\xc0\xaf"},
		{"overlong-slash-3-bytes", "\xe0\x80\xaf"},
		{"overlong-slash-4-bytes", "\xf0\x80\x80\xaf"},
		{"overlong-max-2-bytes", "\xc1\xbf"},
		{"overlong-max-3-bytes", "\xe0\x9f\xbf"},
		{"overlong-max-4-bytes", "\xf0\x8f\xbf\xbf"},
		{"overlong-nul", "\xc0\x80"},
		{"surrogate-U+D800", "\xed\xa0\x80"},
		{"surrogate-U+DB7F", "\xed\xad\xbf"},
		{"surrogate-U+DBFF", "\xed\xaf\xbf"},
		{"surrogate-U+DC00", "\xed\xb0\x80"},
		{"surrogate-U+DFFF", "\xed\xbf\xbf"},
		{"surrogate-pair-U+D800-U+DC00", "\xed\xa0\x80\xed\xb0\x80"},
		{"surrogate-pair-U+DBFF-U+DFFF", "\xed\xaf\xbf\xed\xbf\xbf"},
		{"beyond-U+10FFFF-U+110000", "\xf4\x90\x80\x80"},
		{"beyond-U+10FFFF-U+1FFFFF", "\xf7\xbf\xbf\xbf"},
		{"5-byte-sequence", "\xf8\x88\x80\x80\x80"},
		{"6-byte-sequence", "\xfc\x84\x80\x80\x80\x80"},
		{"lone-continuation-0x80", "\x80"},
		{"lone-continuation-0xbf", "\xbf"},
		{"continuations-only", "\x80\xbf\x80\xbf"},
		{"lonely-start-2-byte", "\xc0 "},
		{"lonely-start-3-byte", "\xe0 "},
		{"lonely-start-4-byte", "\xf0 "},
		{"truncated-2-byte", "\xc2"},
		{"truncated-3-byte", "\xe1\x80"},
		{"truncated-4-byte", "\xf0\x90\x80"},
		{"impossible-0xfe", "\xfe"},
		{"impossible-0xff", "\xff"},
		{"impossible-fe-fe-ff-ff", "\xfe\xfe\xff\xff"},
	}
	var cs []confCase
	for _, v := range valid {
		msg := cfTypingWith(v.s)
		cs = append(cs,
			confCase{name: "valid-" + v.name, send: [][]byte{cfText(msg)}},
			confCase{name: "valid-" + v.name + "-every-byte-a-fragment", send: cfSplit(msg, 1)},
		)
	}
	for _, v := range invalid {
		msg := cfTypingWith(v.s)
		cs = append(cs,
			confCase{name: "invalid-" + v.name, send: [][]byte{cfText(msg)}, want: ws.StatusInvalidFramePayloadData},
			confCase{name: "invalid-" + v.name + "-every-byte-a-fragment", send: cfSplit(msg, 1), want: ws.StatusInvalidFramePayloadData},
		)
	}
	hello := cfTypingWith("Hello-µ@ßöäüàá-UTF-8!!")
	bad := cfTypingWith("κόσμε\xf4\x90\x80\x80edited")
	cut := bytes.Index(bad, []byte("\xf4")) + 2 // between the bytes of the bad sequence
	return append(cs,
		confCase{name: "valid-hello-umlauts-chopped", send: [][]byte{cfText(hello)}, chop: 1},
		confCase{name: "valid-kosme-in-3-fragments-paced", send: cfSplit(cfTypingWith("κόσμε κόσμε κόσμε"), 15), gap: 20 * time.Millisecond},
		confCase{name: "invalid-split-between-fragments-paced",
			send: [][]byte{cfFrame(ws.OpText, false, bad[:cut]), cfFrame(ws.OpContinuation, true, bad[cut:])}, gap: 50 * time.Millisecond, want: ws.StatusInvalidFramePayloadData},
		confCase{name: "invalid-in-first-fragment-paced",
			send: [][]byte{cfFrame(ws.OpText, false, bad[:cut+2]), cfFrame(ws.OpContinuation, true, bad[cut+2:])}, gap: 50 * time.Millisecond, want: ws.StatusInvalidFramePayloadData},
		confCase{name: "invalid-after-valid-message", send: [][]byte{cfText(hello), cfText(bad)}, want: ws.StatusInvalidFramePayloadData},
	)
}

// Group 7 (Autobahn 7.x): the close handshake, close payloads and codes,
// and what follows a close.
func confClosing() []confCase {
	normal := cfClose(ws.StatusNormalClosure, "")
	var tenThenClose [][]byte
	for range 10 {
		tenThenClose = append(tenThenClose, cfText(cfTyping(17)))
	}
	tenThenClose = append(tenThenClose, normal)
	cs := []confCase{
		{name: "close-1000", send: [][]byte{normal}, want: ws.StatusNormalClosure},
		{name: "close-without-code", run: func(s *confSocket) {
			s.send([][]byte{cfFrame(ws.OpClose, true, nil)}, 0, 0)
			if c := s.readClose(ws.StatusNormalClosure, false); !c.empty && c.code != ws.StatusNormalClosure {
				s.t.Errorf("a close without code answered with %d %q, want a close without code or 1000", c.code, c.reason)
			}
			_ = s.expectEnd() // it reports what it finds wrong itself
		}},
		{name: "close-1-byte-payload", send: [][]byte{cfFrame(ws.OpClose, true, []byte{0x03})}, want: ws.StatusProtocolError},
		{name: "close-1000-with-reason", send: [][]byte{cfClose(ws.StatusNormalClosure, "Hello World!")}, want: ws.StatusNormalClosure},
		{name: "close-1000-with-123-byte-reason", send: [][]byte{cfClose(ws.StatusNormalClosure, strings.Repeat("*", 123))}, want: ws.StatusNormalClosure},
		{name: "close-1000-with-124-byte-reason", send: [][]byte{cfFrame(ws.OpClose, true,
			append(binary.BigEndian.AppendUint16(nil, 1000), strings.Repeat("*", 124)...))}, want: ws.StatusProtocolError},
		{name: "close-1000-with-non-utf8-reason", send: [][]byte{cfClose(ws.StatusNormalClosure, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited")}, want: ws.StatusInvalidFramePayloadData},
		{name: "close-twice", send: [][]byte{normal, normal}, want: ws.StatusNormalClosure},
		{name: "close-then-ping", send: [][]byte{normal, cfPing("after close")}, want: ws.StatusNormalClosure},
		{name: "close-then-text", send: [][]byte{normal, cfText(cfTyping(17))}, want: ws.StatusNormalClosure},
		{name: "close-then-text-paced", send: [][]byte{normal, cfText(cfTyping(17)), cfPing("after close")}, gap: 20 * time.Millisecond, want: ws.StatusNormalClosure},
		{name: "close-inside-fragmented-text", send: [][]byte{cfFrame(ws.OpText, false, cfTyping(40)[:20]), normal}, want: ws.StatusNormalClosure},
		{name: "close-after-10-texts", send: tenThenClose, want: ws.StatusNormalClosure},
		{name: "lingers-after-protocol-error", run: confLingers(ws.StatusProtocolError,
			cfFrame(3, true, []byte("reserved opcode")), cfPing("unread"), cfText(cfTyping(3000)))},
		{name: "lingers-after-client-close", run: confLingers(ws.StatusNormalClosure,
			normal, cfPing("unread"), cfText(cfTyping(3000)))},
		{name: "lingers-after-invalid-utf8", run: confLingers(ws.StatusInvalidFramePayloadData,
			cfText(cfTypingWith("\xed\xa0\x80")), cfPing("unread"), cfText(cfTyping(3000)))},
		{name: "lingers-after-message-too-big", run: confLingers(ws.StatusMessageTooBig,
			cfCraft(ws.Header{Fin: true, OpCode: ws.OpText, Length: 16385, Masked: true, Mask: ws.NewMask()}, nil), cfPing("unread"), cfText(cfTyping(3000)))},
	}
	for _, code := range []ws.StatusCode{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		cs = append(cs, confCase{name: fmt.Sprintf("close-valid-code-%d", code), send: [][]byte{cfClose(code, "")}, want: code})
	}
	for _, code := range []ws.StatusCode{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		cs = append(cs, confCase{name: fmt.Sprintf("close-invalid-code-%d", code), send: [][]byte{cfClose(code, "")}, want: ws.StatusProtocolError})
	}
	return cs
}

// confLingers: the server's close frame survives frames the server never
// read. A server that closes its socket with unread data makes the kernel
// send a reset, which on a real network can destroy the close frame on its
// way; it must shut its side down (FIN), drain what comes (a few KB here),
// then close. The client does not answer the close, so that no write of its
// own can hide the reset.
func confLingers(want ws.StatusCode, frames ...[]byte) func(s *confSocket) {
	return func(s *confSocket) {
		s.send(frames, 0, 0)
		time.Sleep(300 * time.Millisecond) // let the server finish whatever it does
		s.wantCode(want, s.readClose(want, false))
		switch err := s.expectEnd(); {
		case errors.Is(err, syscall.ECONNRESET):
			s.t.Errorf("the connection was reset after the close frame: the server closed with unread data instead of lingering")
		case !errors.Is(err, io.EOF):
			s.t.Errorf("the connection ended with %v, want a clean end (EOF)", err)
		}
	}
}

// Group 9 (Autobahn 9.1, 9.2): the 16 KiB message limit, in one frame or
// many, and frame lengths that must be refused from the header alone.
func confLimits() []confCase {
	var cs []confCase
	for _, k := range []int{64, 256, 1024, 4096, 16384} {
		cs = append(cs, confCase{name: fmt.Sprintf("16384-bytes-in-fragments-of-%d", k), send: cfSplit(cfTyping(16384), k)})
	}
	header := func(fin bool, op ws.OpCode, n int64) []byte {
		return cfCraft(ws.Header{Fin: fin, OpCode: op, Length: n, Masked: true, Mask: ws.NewMask()}, nil)
	}
	// A 64-bit length with its most significant bit set (RFC 6455 5.2: it
	// must be 0), which ws.Header cannot even express.
	msb := []byte{0x80 | byte(ws.OpText), 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}
	return append(cs,
		confCase{name: "16384-bytes-in-one-frame", send: [][]byte{cfText(cfTyping(16384))}},
		confCase{name: "16385-bytes-in-one-frame", send: [][]byte{cfText(cfTyping(16385))}, want: ws.StatusMessageTooBig},
		confCase{name: "65536-bytes-in-one-frame", send: [][]byte{cfText(cfTyping(65536))}, want: ws.StatusMessageTooBig},
		confCase{name: "16385-bytes-in-fragments-of-64", send: cfSplit(cfTyping(16385), 64), want: ws.StatusMessageTooBig},
		confCase{name: "17408-bytes-in-fragments-of-1024", send: cfSplit(cfTyping(17408), 1024), want: ws.StatusMessageTooBig},
		confCase{name: "16384-bytes-then-1-more", send: [][]byte{cfFrame(ws.OpText, false, cfTyping(16384)), cfFrame(ws.OpContinuation, true, []byte(" "))}, want: ws.StatusMessageTooBig},
		confCase{name: "header-declaring-16385-bytes", send: [][]byte{header(true, ws.OpText, 16385)}, want: ws.StatusMessageTooBig},
		confCase{name: "header-declaring-2to63-minus-1-bytes", send: [][]byte{header(true, ws.OpText, 1<<63-1)}, want: ws.StatusMessageTooBig},
		confCase{name: "header-declaring-2to63-bytes", send: [][]byte{msb}, want: ws.StatusProtocolError},
		confCase{name: "continuation-declaring-12385-bytes-after-4000", run: func(s *confSocket) {
			confSizeAtOnce(s, 16385-4000)
		}},
		confCase{name: "continuation-declaring-2to63-minus-1-bytes-after-4000", run: func(s *confSocket) {
			confSizeAtOnce(s, 1<<63-1)
		}},
	)
}

// confSizeAtOnce: a continuation whose declared length takes the message
// over the limit is refused from its header, within a second, without
// waiting for (or reading) its payload, and without the sum of the lengths
// overflowing.
func confSizeAtOnce(s *confSocket, n int64) {
	first := cfTyping(4000)
	s.send([][]byte{
		cfFrame(ws.OpText, false, first),
		cfCraft(ws.Header{Fin: true, OpCode: ws.OpContinuation, Length: n, Masked: true, Mask: ws.NewMask()}, nil),
	}, 0, 0)
	start := time.Now()
	_ = s.conn.SetReadDeadline(start.Add(time.Second))
	c := s.readClose(ws.StatusMessageTooBig, false)
	if elapsed := time.Since(start); elapsed > time.Second {
		s.t.Errorf("the close came %v after the header", elapsed.Round(time.Millisecond))
	}
	s.wantCode(ws.StatusMessageTooBig, c)
	s.answer(c)
	_ = s.expectEnd() // it reports what it finds wrong itself
}

// confSocket is the client side of one raw WebSocket, in its own room.
type confSocket struct {
	t      *testing.T
	b      *browser
	room   string
	conn   net.Conn
	r      *bufio.Reader
	pings  [][]byte // payloads of the pings sent and not answered yet, oldest first
	closed bool     // the client sent a close frame
	werr   error    // the first failed write (the server may close before reading all)
}

// confOpen joins a fresh room as a browser would and upgrades a raw TCP
// connection with the room's cookie and the site's own Origin.
func confOpen(t *testing.T, gw *gateway) *confSocket {
	t.Helper()
	b := newBrowser(t, gw.URL)
	id := b.createRoom()
	b.join(id)
	ck := b.cookie(id)
	if ck == nil {
		t.Fatal("no room cookie after joining")
	}
	u, err := url.Parse(gw.URL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, confDeadline)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(confDeadline))
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req := "GET /api/realtime?roomId=" + id + " HTTP/1.1\r\n" +
		"Host: " + u.Host + "\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"Origin: " + gw.URL + "\r\n" +
		"Cookie: " + ck.Name + "=" + ck.Value + "\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		t.Fatalf("upgrade: %d %s", resp.StatusCode, body)
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")) //nolint:gosec // the handshake's hash, not a secret's
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), base64.StdEncoding.EncodeToString(sum[:]); got != want {
		t.Fatalf("Sec-WebSocket-Accept %q, want %q", got, want)
	}
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		t.Fatalf("extensions %q negotiated, none offered", ext)
	}
	return &confSocket{t: t, b: b, room: id, conn: conn, r: r}
}

// send writes frames, noting the pings that must be answered and whether a
// close went out.
func (s *confSocket) send(frames [][]byte, chop int, gap time.Duration) {
	for _, f := range frames {
		s.note(f)
	}
	if gap == 0 {
		s.write(bytes.Join(frames, nil), chop)
		return
	}
	for i, f := range frames {
		if i > 0 {
			time.Sleep(gap)
		}
		s.write(f, chop)
	}
}

func (s *confSocket) note(f []byte) {
	h, err := ws.ReadHeader(bytes.NewReader(f))
	if err != nil {
		return
	}
	switch n := ws.HeaderSize(h); {
	case h.OpCode == ws.OpClose:
		s.closed = true
	case h.OpCode == ws.OpPing && h.Fin && h.Rsv == 0 && h.Masked && h.Length <= ws.MaxControlFramePayloadSize && n+int(h.Length) <= len(f):
		p := bytes.Clone(f[n : n+int(h.Length)])
		ws.Cipher(p, h.Mask, 0)
		s.pings = append(s.pings, p)
	}
}

func (s *confSocket) write(p []byte, chop int) {
	if chop <= 0 {
		chop = len(p)
	}
	for len(p) > 0 && s.werr == nil {
		n := min(chop, len(p))
		if _, err := s.conn.Write(p[:n]); err != nil {
			s.werr = err
			return
		}
		if p = p[n:]; len(p) > 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

// next reads one server frame.
func (s *confSocket) next() (ws.Header, []byte, error) {
	h, err := ws.ReadHeader(s.r)
	if err != nil {
		return h, nil, err
	}
	if h.Masked {
		s.t.Errorf("server frame (opcode %#x) is masked", byte(h.OpCode))
	}
	if h.Rsv != 0 {
		s.t.Errorf("server frame (opcode %#x) has reserved bits %03b", byte(h.OpCode), h.Rsv)
	}
	if h.Length > 1<<20 {
		s.t.Fatalf("server frame (opcode %#x) of %d bytes", byte(h.OpCode), h.Length)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(s.r, p); err != nil {
		return h, nil, err
	}
	if h.Masked {
		ws.Cipher(p, h.Mask, 0)
	}
	return h, p, nil
}

// confEnded says how a read ended.
func confEnded(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "nothing came before the deadline (the server hangs)"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the connection ended"
	case errors.Is(err, syscall.ECONNRESET):
		return "the connection was reset"
	}
	return err.Error()
}

// expectClose: the server answers with a close frame with want (after a
// probe ping unless the client closed), then ends the connection.
func (s *confSocket) expectClose(want ws.StatusCode) {
	s.t.Helper()
	c := s.readClose(want, !s.closed)
	s.wantCode(want, c)
	s.answer(c)
	_ = s.expectEnd() // it reports what it finds wrong itself
}

// confClose is a server's close frame.
type confClose struct {
	code   ws.StatusCode
	reason string
	empty  bool // no code in it
}

// readClose reads up to the server's close frame; with probe, it first
// sends a ping that the server must not answer.
func (s *confSocket) readClose(want ws.StatusCode, probe bool) confClose {
	s.t.Helper()
	if probe {
		s.write(cfPing(confProbe), 0)
	}
	for {
		h, p, err := s.next()
		if err != nil {
			s.t.Fatalf("want close %d, but %s before any close frame", want, confEnded(err))
		}
		switch h.OpCode {
		case ws.OpPong:
			if probe && string(p) == confProbe {
				s.t.Fatalf("want close %d, but the socket stayed open (it answered a ping sent after the offending frames)", want)
			}
		case ws.OpClose:
			return s.closeOf(p)
		}
	}
}

func (s *confSocket) wantCode(want ws.StatusCode, c confClose) {
	s.t.Helper()
	switch {
	case c.empty:
		s.t.Errorf("closed without a code, want %d", want)
	case c.code != want:
		s.t.Errorf("closed with %d %q, want %d", c.code, c.reason, want)
	}
}

// answer replies to the server's close as a client must, unless it sent
// one already.
func (s *confSocket) answer(c confClose) {
	if s.closed {
		return
	}
	var body []byte
	if !c.empty {
		body = ws.NewCloseFrameBody(c.code, "")
	}
	s.write(cfFrame(ws.OpClose, true, body), 0)
	s.closed = true
}

// closeOf decodes a server's close payload and checks it is one an
// endpoint may send.
func (s *confSocket) closeOf(p []byte) confClose {
	switch len(p) {
	case 0:
		return confClose{empty: true}
	case 1:
		s.t.Errorf("server close payload of 1 byte %x", p)
		return confClose{empty: true}
	}
	code, reason := ws.ParseCloseFrameData(p)
	if !utf8.ValidString(reason) {
		s.t.Errorf("server close reason %q is not UTF-8", reason)
	}
	if !(code >= 1000 && code <= 1003 || code >= 1007 && code <= 1014 || code >= 3000 && code <= 4999) {
		s.t.Errorf("server sent close code %d, which no endpoint may send", code)
	}
	return confClose{code: code, reason: reason}
}

// expectEnd: after its close frame the server sends nothing and ends the
// connection promptly; it returns how the connection ended.
func (s *confSocket) expectEnd() error {
	_ = s.conn.SetReadDeadline(time.Now().Add(confEndWait))
	for {
		h, _, err := s.next()
		if err == nil {
			s.t.Errorf("a frame (opcode %#x) after the server's close frame", byte(h.OpCode))
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			s.t.Errorf("the connection is still open %v after the close frame", confEndWait)
		}
		return err
	}
}

// expectOpen: the socket answers every ping sent (and a last one) in order
// with its payload, then delivers a message posted through the HTTP API.
func (s *confSocket) expectOpen() {
	t := s.t
	t.Helper()
	s.send([][]byte{cfPing("alive? " + contract.RandomID(8))}, 0, 0)
	fail := func(what string) {
		t.Helper()
		if s.werr != nil {
			t.Logf("a write failed: %v", s.werr)
		}
		t.Fatalf("want the socket open, but %s", what)
	}
	for len(s.pings) > 0 {
		h, p, err := s.next()
		switch {
		case err != nil:
			fail(confEnded(err))
		case h.OpCode == ws.OpClose:
			c := s.closeOf(p)
			fail(fmt.Sprintf("it closed with %d %q", c.code, c.reason))
		case h.OpCode == ws.OpPong && !bytes.Equal(p, s.pings[0]):
			fail(fmt.Sprintf("a pong %q came where %q was due (pings are answered in order, with their payload)", p, s.pings[0]))
		case h.OpCode == ws.OpPong:
			s.pings = s.pings[1:]
		}
	}
	text := "still delivering " + contract.RandomID(8)
	body, _ := json.Marshal(map[string]string{"sender": "conformance", "text": text})
	if r := s.b.do(http.MethodPost, "/api/messages?roomId="+s.room, body, nil); r.status != http.StatusOK {
		t.Fatalf("post: %d %s", r.status, r.body)
	}
	for {
		h, p, err := s.next()
		switch {
		case err != nil:
			fail(confEnded(err) + " before the posted message came")
		case h.OpCode == ws.OpClose:
			c := s.closeOf(p)
			fail(fmt.Sprintf("it closed with %d %q before the posted message came", c.code, c.reason))
		case h.OpCode == ws.OpText:
			var f frame
			var m contract.Message
			if json.Unmarshal(p, &f) == nil && f.Event == "chat.message" && json.Unmarshal(f.Data, &m) == nil && m.Text == text {
				return
			}
		}
	}
}

// cfFrame is a masked client frame.
func cfFrame(op ws.OpCode, fin bool, p []byte) []byte {
	return cfCraft(ws.Header{Fin: fin, OpCode: op, Length: int64(len(p)), Masked: true, Mask: ws.NewMask()}, p)
}

// cfCraft is h followed by p, masked with h.Mask if h.Masked; h.Length may
// differ from len(p), for a frame that lies about its size.
func cfCraft(h ws.Header, p []byte) []byte {
	var b bytes.Buffer
	if err := ws.WriteHeader(&b, h); err != nil {
		panic(err)
	}
	n := b.Len()
	b.Write(p)
	out := b.Bytes()
	if h.Masked {
		ws.Cipher(out[n:], h.Mask, 0)
	}
	return out
}

func cfText(p []byte) []byte { return cfFrame(ws.OpText, true, p) }

func cfPing(p string) []byte { return cfFrame(ws.OpPing, true, []byte(p)) }

func cfClose(code ws.StatusCode, reason string) []byte {
	return cfFrame(ws.OpClose, true, ws.NewCloseFrameBody(code, reason))
}

// cfSplit is msg as a text message in fragments of k bytes.
func cfSplit(msg []byte, k int) [][]byte {
	var out [][]byte
	for i := 0; i < len(msg); i += k {
		op, end := ws.OpContinuation, min(i+k, len(msg))
		if i == 0 {
			op = ws.OpText
		}
		out = append(out, cfFrame(op, end == len(msg), msg[i:end]))
	}
	return out
}

// cfTyping is a valid client message of exactly n bytes (17, or 26 and
// more): a typing event, padded with a field the server ignores.
func cfTyping(n int) []byte {
	const bare, head, tail = `{"type":"typing"}`, `{"type":"typing","pad":"`, `"}`
	if n == len(bare) {
		return []byte(bare)
	}
	if n < len(head)+len(tail) {
		panic(fmt.Sprintf("no typing event of %d bytes", n))
	}
	return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
}

// cfTypingWith is a typing event carrying s (any bytes) in a JSON string.
func cfTypingWith(s string) []byte { return []byte(`{"type":"typing","pad":"` + s + `"}`) }
