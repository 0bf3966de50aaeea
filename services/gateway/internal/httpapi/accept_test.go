package httpapi

import (
	"testing"

	"wisp/services/gateway/internal/web"
)

// What a browser, a proxy or a careful client asks for is what it gets:
// the form it rates highest, never one it refused.
func TestTheEncodingIsTheOneTheClientRatesHighest(t *testing.T) {
	script := web.MustLookup("static/room.js")
	font := web.MustLookup("static/fonts/jetbrains-mono-latin-400-normal.woff2")
	for _, tc := range []struct {
		header string
		f      *web.Encoded
		want   string
	}{
		{"", script, ""},
		{"gzip, deflate, br, zstd", script, "br"}, // Chromium
		{"gzip, deflate", script, "gzip"},
		{"deflate", script, ""},
		{"identity", script, ""},
		{"*", script, "br"},
		{"GZIP", script, "gzip"},
		{"br;q=0, gzip", script, "gzip"},
		{"br;q=0, *", script, "gzip"},
		{"gzip;q=0, br;q=0, *", script, ""},
		{"gzip;q=1, br;q=0.1", script, "gzip"},
		{"gzip;q=0.5", script, "gzip"},
		{"identity;q=1, gzip;q=0.5", script, ""},
		{"br ; q=0.9 , gzip", script, "gzip"},
		{"*;q=0", script, ""}, // nothing acceptable: the file as it is
		{"gzip;;;", script, ""},
		{"gzip, deflate, br, zstd", font, ""}, // no compressed form
	} {
		if _, got := pickEncoding([]byte(tc.header), tc.f); got != tc.want {
			t.Errorf("Accept-Encoding %q: %q, want %q", tc.header, got, tc.want)
		}
	}
}
