package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
)

// Every embedded file is served with its own Content-Type, and each
// compressed form a browser may get unpacks to the file itself.
func TestEveryFileHasATypeAndFaithfulCompressedForms(t *testing.T) {
	n := 0
	err := fs.WalkDir(Static, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		e, ok := Lookup(name)
		if !ok {
			t.Fatalf("%s: not found", name)
		}
		if e.Type == "application/octet-stream" {
			t.Errorf("%s: no Content-Type for its extension", name)
		}
		for enc, body := range map[string][]byte{"br": e.Brotli, "gzip": e.Gzip} {
			if body == nil {
				continue
			}
			if len(body) >= len(e.Identity) {
				t.Errorf("%s: %s form is %d bytes, not smaller than %d", name, enc, len(body), len(e.Identity))
			}
			var r io.Reader = brotli.NewReader(bytes.NewReader(body))
			if enc == "gzip" {
				if r, err = gzip.NewReader(bytes.NewReader(body)); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			}
			if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, e.Identity) {
				t.Errorf("%s: the %s form does not unpack to the file (%v)", name, enc, err)
			}
		}
		if e.ETagOf("") == e.ETagOf("br") || e.ETagOf("br") == e.ETagOf("gzip") {
			t.Errorf("%s: forms share an ETag: %s %s %s", name, e.ETagOf(""), e.ETagOf("br"), e.ETagOf("gzip"))
		}
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("walked %d files: %v", n, err)
	}
	if _, ok := Lookup("static/missing.js"); ok {
		t.Error("a missing file was found")
	}
}

// Text shrinks to well under half; fonts, already compressed, are sent as
// they are.
func TestTextIsCompressedAndFontsAreNot(t *testing.T) {
	for _, name := range []string{RoomPage, HomePage, "static/room.js", "static/app.css"} {
		e := MustLookup(name)
		if e.Brotli == nil || len(e.Brotli)*2 > len(e.Identity) || e.Gzip == nil || len(e.Gzip)*2 > len(e.Identity) {
			t.Errorf("%s: %d bytes, brotli %d, gzip %d", name, len(e.Identity), len(e.Brotli), len(e.Gzip))
		}
	}
	fonts, _ := fs.Glob(Static, "static/fonts/*.woff2")
	if len(fonts) == 0 {
		t.Fatal("no fonts embedded")
	}
	for _, name := range fonts {
		if e := MustLookup(name); e.Brotli != nil || e.Gzip != nil || !strings.HasPrefix(e.Type, "font/") {
			t.Errorf("%s: type %s, brotli %d bytes, gzip %d", name, e.Type, len(e.Brotli), len(e.Gzip))
		}
	}
}
