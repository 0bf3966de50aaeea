// Package web holds wisp's browser UI, static files embedded in the gateway binary.
package web

import "embed"

// Static is the UI: pages, stylesheet, scripts and icon, all under "static/".
// Serve the assets with http.FileServerFS(Static) at AssetPrefix so that the
// URL "/static/app.css" maps to the file "static/app.css".
//
//go:embed static
var Static embed.FS

// Page files inside Static. The gateway writes them itself (not through the
// file server) with Content-Type "text/html; charset=utf-8" and the CSP header.
const (
	// HomePage is served at GET /.
	HomePage = "static/index.html"
	// RoomPage is served at GET /room/{roomId} once the member's cookie is set.
	RoomPage = "static/room.html"
)

// AssetPrefix is the URL path under which the pages load their CSS, JS and
// icon ("/static/app.css", "/static/home.js", ...); the pages use absolute
// paths because the room page lives at /room/{roomId}.
const AssetPrefix = "/static/"

// CSP is the Content-Security-Policy header value to send with both pages.
// Nothing inline is needed: all script and style come from AssetPrefix, and
// the WebSocket goes to the same origin, which Chromium and Firefox match
// with 'self' for ws: and wss: as well.
const CSP = "default-src 'self'; " +
	"script-src 'self'; " +
	"style-src 'self'; " +
	"img-src 'self' data:; " +
	"connect-src 'self'; " +
	"font-src 'self'; " +
	"object-src 'none'; " +
	"base-uri 'none'; " +
	"form-action 'self'; " +
	"frame-ancestors 'none'"
