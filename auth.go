package wspub

import (
	"net/http"
	"strings"
)

// Action is what a client asks Options.Authorize for.
type Action int

const (
	// ActionSubscribe is a client's subscribe to a channel.
	ActionSubscribe Action = iota + 1
	// ActionPublish is a client's publish to a channel (see Options.AllowClientPublish).
	ActionPublish
)

// String returns "subscribe" or "publish".
func (a Action) String() string {
	switch a {
	case ActionSubscribe:
		return "subscribe"
	case ActionPublish:
		return "publish"
	}
	return "unknown"
}

// SubprotocolTokenPrefix marks a bearer token offered as a WebSocket subprotocol, the one
// header a browser lets a page set on a WebSocket handshake:
//
//	new WebSocket(url, ["wspub.v1", "bearer." + token])
//
// The hub only ever echoes "wspub.v1", so the token is not sent back.
const SubprotocolTokenPrefix = "bearer."

// BearerToken returns the token of an "Authorization: Bearer <token>" header, or "".
// Non-browser clients can set it; browsers cannot on a WebSocket handshake (see
// SubprotocolToken).
func BearerToken(r *http.Request) string {
	const prefix = "bearer "
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return ""
	}
	return strings.TrimSpace(h[len(prefix):])
}

// SubprotocolToken returns the token a client offered as the subprotocol
// "bearer.<token>" (see SubprotocolTokenPrefix), or "". The token must consist of
// characters allowed in an HTTP token, which JWTs and base64url strings are.
func SubprotocolToken(r *http.Request) string {
	for _, header := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(header, ",") {
			if p = strings.TrimSpace(p); strings.HasPrefix(p, SubprotocolTokenPrefix) {
				return p[len(SubprotocolTokenPrefix):]
			}
		}
	}
	return ""
}

// QueryToken returns the query parameter name of the request URL, or "". Prefer
// SubprotocolToken: URLs, and so tokens in them, end up in access logs, proxy logs and
// browser history.
func QueryToken(r *http.Request, name string) string {
	return r.URL.Query().Get(name)
}
