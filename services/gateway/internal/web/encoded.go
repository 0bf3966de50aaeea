package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"io/fs"
	"path"
	"sync"

	"github.com/andybalholm/brotli"
)

// Encoded is one file of Static in the forms it may be sent in: as it is,
// and compressed with brotli and gzip. A compressed form is nil when it
// would hardly be smaller (fonts already are compressed). The files never
// change while the gateway runs, so each is compressed once, when first
// looked up (the pages when the gateway starts), and no response pays for
// compression.
type Encoded struct {
	Type     string // Content-Type, by the file's extension
	Identity []byte
	Brotli   []byte
	Gzip     []byte
	// ETag is a strong validator of Identity; each encoding is a
	// representation of its own, so ETagOf adds the encoding to it.
	ETag string
}

// ETagOf is the ETag of the representation in content coding enc ("" for
// the file as it is).
func (e *Encoded) ETagOf(enc string) string {
	if enc == "" {
		return `"` + e.ETag + `"`
	}
	return `"` + e.ETag + "-" + enc + `"`
}

// types are the Content-Types of the files in Static, by extension: a
// table of our own, since the mime package also reads the machine's
// /etc/mime.types and would answer differently on different hosts.
var types = map[string]string{
	".html":  "text/html; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".mjs":   "text/javascript; charset=utf-8",
	".svg":   "image/svg+xml",
	".woff2": "font/woff2",
	".txt":   "text/plain; charset=utf-8",
}

// Compression levels: brotli 5 and gzip 9 are within 5 % of the smallest
// either can do on these files, at a twentieth of brotli 11's time.
const (
	brotliLevel = 5
	gzipLevel   = gzip.BestCompression
)

var encoded = sync.OnceValue(func() map[string]func() *Encoded {
	files := map[string]func() *Encoded{}
	_ = fs.WalkDir(Static, ".", func(name string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files[name] = sync.OnceValue(func() *Encoded { return encode(name) })
		}
		return nil
	})
	return files
})

// Lookup returns the file name of Static ("static/app.css") in every form
// it may be sent in; false when there is no such file.
func Lookup(name string) (*Encoded, bool) {
	f, ok := encoded()[name]
	if !ok {
		return nil, false
	}
	return f(), true
}

// MustLookup is Lookup for the pages the gateway cannot run without.
func MustLookup(name string) *Encoded {
	f, ok := Lookup(name)
	if !ok {
		panic("web: missing embedded file " + name)
	}
	return f
}

func encode(name string) *Encoded {
	raw, err := fs.ReadFile(Static, name)
	if err != nil {
		panic("web: unreadable embedded file " + name + ": " + err.Error())
	}
	sum := sha256.Sum256(raw)
	e := &Encoded{Type: types[path.Ext(name)], Identity: raw, ETag: base64.RawURLEncoding.EncodeToString(sum[:12])}
	if e.Type == "" {
		e.Type = "application/octet-stream"
	}
	e.Brotli = smaller(raw, func(w io.Writer) io.WriteCloser { return brotli.NewWriterLevel(w, brotliLevel) })
	e.Gzip = smaller(raw, func(w io.Writer) io.WriteCloser {
		z, _ := gzip.NewWriterLevel(w, gzipLevel) // a valid level never fails
		return z
	})
	return e
}

// smaller is raw compressed by the writer newW makes, nil when that saves
// less than a sixteenth: then the browser's unpacking is not worth it.
func smaller(raw []byte, newW func(io.Writer) io.WriteCloser) []byte {
	var b bytes.Buffer
	w := newW(&b)
	if _, err := w.Write(raw); err != nil {
		return nil
	}
	if err := w.Close(); err != nil || b.Len() > len(raw)-len(raw)/16 {
		return nil
	}
	return b.Bytes()
}
