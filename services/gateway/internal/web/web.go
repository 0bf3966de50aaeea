// Package web holds wisp's browser UI, static files embedded in the gateway binary.
package web

import "embed"

// Static is the UI: pages, stylesheet, scripts and icon, all under "static/".
// The URL "/static/app.css" (AssetPrefix + name) is the file
// "static/app.css"; Lookup has each file in the forms it is sent in.
//
//go:embed static
var Static embed.FS

// Page files inside Static. The gateway writes them itself, never stored
// (Cache-Control: no-store), with the CSP header.
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
