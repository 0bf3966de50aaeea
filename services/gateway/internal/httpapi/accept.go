package httpapi

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/gobwas/httphead"

	"wisp/services/gateway/internal/web"
)

// pickEncoding chooses the form of f to send for a request's
// Accept-Encoding header (RFC 9110 §12.5.3): the one the client rates
// highest, the smaller on a tie (brotli, then gzip, then f as it is).
// Codings match without regard to case, and "*" stands for any the header
// does not name. f as it is, unnamed, is acceptable but least wanted; it is
// also what is sent when nothing is acceptable.
func pickEncoding(header []byte, f *web.Encoded) (body []byte, enc string) {
	q := accepted(header)
	body, best := f.Identity, q.of(q.identity, 1e-3)
	if w := q.of(q.gzip, 0); f.Gzip != nil && w > 0 && w >= best {
		body, enc, best = f.Gzip, "gzip", w
	}
	if w := q.of(q.br, 0); f.Brotli != nil && w > 0 && w >= best {
		body, enc = f.Brotli, "br"
	}
	return body, enc
}

// qualities are the weights an Accept-Encoding header gives the codings
// the gateway has, and "*"; -1 where it does not name one.
type qualities struct{ br, gzip, identity, star float64 }

// of is a coding's weight: its own, else that of "*", else unnamed.
func (q qualities) of(own, unnamed float64) float64 {
	switch {
	case own >= 0:
		return own
	case q.star >= 0:
		return q.star
	}
	return unnamed
}

// named is where coding's weight goes; nil for a coding the gateway lacks.
func (q *qualities) named(coding []byte) *float64 {
	switch strings.ToLower(string(coding)) {
	case "br":
		return &q.br
	case "gzip":
		return &q.gzip
	case "identity":
		return &q.identity
	case "*":
		return &q.star
	}
	return nil
}

// accepted reads the header's weights; a malformed header names nothing.
func accepted(header []byte) qualities {
	none := qualities{br: -1, gzip: -1, identity: -1, star: -1}
	q, last := none, -1
	var cur *float64
	ok := httphead.ScanOptions(header, func(i int, coding, attr, val []byte) httphead.Control {
		if i != last { // the first call for a coding
			if last, cur = i, q.named(coding); cur != nil {
				*cur = 1
			}
		}
		if cur != nil && bytes.EqualFold(attr, []byte("q")) {
			if v, err := strconv.ParseFloat(string(val), 64); err == nil && v >= 0 && v <= 1 {
				*cur = v
			}
		}
		return httphead.ControlContinue
	})
	if !ok {
		return none
	}
	return q
}
