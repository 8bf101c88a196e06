package wspub

import (
	"bytes"
	"crypto/sha256"
	_ "embed" // the browser client
	"encoding/hex"
	"net/http"
	"time"
)

// clientJS is the browser client, client/wspub.js.
//
//go:embed client/wspub.js
var clientJS []byte

// clientETag identifies this version of clientJS: browsers revalidate with it and get a
// 304 until the client changes.
var clientETag = func() string {
	sum := sha256.Sum256(clientJS)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}()

// ClientHandler serves the browser client (client/wspub.js) as a JavaScript module: mount it next to the hub, mux.Handle("/wspub.js", wspub.ClientHandler()).
//
// A page then imports it with import { connect } from "/wspub.js" (client/README.md has
// its API). The client is embedded in the program, so it always matches the hub's version
// of the protocol. Responses carry an ETag and Cache-Control: no-cache: browsers keep
// the file and revalidate it on each load, getting a 304 until the program is upgraded.
// Only GET and HEAD are allowed (405 otherwise).
func ClientHandler() http.Handler {
	return http.HandlerFunc(serveClient)
}

func serveClient(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "wspub: method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", clientETag)
	h.Set("X-Content-Type-Options", "nosniff")
	// ServeContent answers If-None-Match (304), HEAD and Range requests.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(clientJS))
}
