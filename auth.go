package wspub

import (
	"encoding/base64"
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
// The hub only ever echoes "wspub.v1", so the token is not sent back. A token with
// characters a subprotocol cannot hold is sent with SubprotocolToken64Prefix instead.
const SubprotocolTokenPrefix = "bearer."

// SubprotocolToken64Prefix marks a bearer token offered as a subprotocol in base64url
// without padding (RFC 4648 §5) of its UTF-8 bytes: "bearer64." + base64url(token). A
// subprotocol may only hold the characters of an HTTP token (RFC 7230: letters, digits
// and !#$%&'*+-.^_`|~), and browsers refuse to open a WebSocket with any other, so a
// client sends a token with others ("/", "=", spaces: standard base64, many JWT
// libraries' output) this way.
const SubprotocolToken64Prefix = "bearer64."

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

// SubprotocolToken returns the token a client offered as a subprotocol, or "": the first
// of "bearer.<token>" (see SubprotocolTokenPrefix), taken as it is, and
// "bearer64.<base64url>" (see SubprotocolToken64Prefix), decoded. A bearer64 token that is
// not strict base64url without padding is no token (""), so that a malformed one is
// refused like a missing one.
func SubprotocolToken(r *http.Request) string {
	for _, header := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(header, ",") {
			p = strings.TrimSpace(p)
			switch {
			case strings.HasPrefix(p, SubprotocolTokenPrefix):
				return p[len(SubprotocolTokenPrefix):]
			case strings.HasPrefix(p, SubprotocolToken64Prefix):
				b, err := base64.RawURLEncoding.Strict().DecodeString(p[len(SubprotocolToken64Prefix):])
				if err != nil {
					return ""
				}
				return string(b)
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
