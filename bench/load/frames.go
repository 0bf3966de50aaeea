package load

import (
	"bytes"
	"strconv"
)

// The generator reads server frames without decoding their JSON: it only
// needs the event name, the text it wrote (message number i as "L<i>."),
// the clientId it chose ("b<i>"), seq and status. Its texts, senders and
// clientIds hold no character JSON would escape, so plain byte search is
// exact for them.

var (
	eventKey    = []byte(`"event":"`)
	textKey     = []byte(`"text":"`)
	clientIDKey = []byte(`"clientId":"`)
	seqKey      = []byte(`"seq":`)
	statusKey   = []byte(`"status":`)
)

// eventOf is the event name of a server frame, nil if it has none.
func eventOf(frame []byte) []byte { v, _ := stringField(frame, eventKey); return v }

// stringField is the string value after key (which ends with the opening
// quote), up to the next quote.
func stringField(frame, key []byte) ([]byte, bool) {
	i := bytes.Index(frame, key)
	if i < 0 {
		return nil, false
	}
	rest := frame[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil, false
	}
	return rest[:j], true
}

// intField is the non-negative integer after key, -1 when there is none.
func intField(frame, key []byte) int64 {
	i := bytes.Index(frame, key)
	if i < 0 {
		return -1
	}
	rest := bytes.TrimLeft(frame[i+len(key):], " ")
	n, ok := leadingInt(rest)
	if !ok {
		return -1
	}
	return n
}

// leadingInt parses the decimal digits at the start of b.
func leadingInt(b []byte) (int64, bool) {
	var n int64
	k := 0
	for ; k < len(b) && b[k] >= '0' && b[k] <= '9' && k < 18; k++ {
		n = n*10 + int64(b[k]-'0')
	}
	return n, k > 0
}

// textOf finds the text of a chat.message (or ack) frame.
func textOf(frame []byte) ([]byte, bool) { return stringField(frame, textKey) }

// numberIn is i from a text "L<i>.…" or a clientId "b<i>" (prefix is 'L'
// or 'b'); -1 for anything the generator did not write.
func numberIn(s []byte, prefix byte) int {
	if len(s) < 2 || s[0] != prefix {
		return -1
	}
	n, ok := leadingInt(s[1:])
	if !ok {
		return -1
	}
	return int(n)
}

// appendText appends message i's text: "L<i>." padded with 'x' to size
// bytes (longer when the number does not fit).
func appendText(b []byte, i, size int) []byte {
	start := len(b)
	b = append(b, 'L')
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, '.')
	for len(b)-start < size {
		b = append(b, 'x')
	}
	return b
}

// appendClientID appends message i's clientId ("b<i>": 1–64 characters of
// A-Za-z0-9_-, unique within a run).
func appendClientID(b []byte, i int) []byte {
	return strconv.AppendInt(append(b, 'b'), int64(i), 10)
}

// sendFrame is the client frame that sends message i over the socket.
func sendFrame(b []byte, i, size int) []byte {
	b = append(b, `{"type":"send","clientId":"`...)
	b = appendClientID(b, i)
	b = append(b, `","sender":"bench","text":"`...)
	b = appendText(b, i, size)
	return append(b, `"}`...)
}

// postBody is the POST /api/messages body of message i (with the same
// optional clientId a browser sends, so a retry could never store twice).
func postBody(b []byte, i, size int) []byte {
	b = append(b, `{"clientId":"`...)
	b = appendClientID(b, i)
	b = append(b, `","sender":"bench","text":"`...)
	b = appendText(b, i, size)
	return append(b, `"}`...)
}
