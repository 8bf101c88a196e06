package bench

import (
	"encoding/json"

	"github.com/wspub/wspub/internal/benchctl"
)

// EnvelopeLayout is wspub's envelope, {"type":"bench","channel":C,"data":D}, which the
// servers that speak wspub's protocol send as it is.
func EnvelopeLayout(channel string) benchctl.Layout {
	ch, _ := json.Marshal(channel) // a string always encodes
	return benchctl.Layout{Prefix: `{"type":"bench","channel":` + string(ch) + `,"data":`, Suffix: `}`}
}

// subscribeRequest is the one client message the wspub-protocol peers understand:
// {"type":"subscribe","channel":"bench","id":"1"}.
type subscribeRequest struct {
	Type    string `json:"type"`
	Channel string `json:"channel"`
	ID      string `json:"id,omitempty"`
}

// ParseSubscribe returns the channel and id of a subscribe request, and false for
// anything else.
func ParseSubscribe(msg []byte) (channel, id string, ok bool) {
	var req subscribeRequest
	if json.Unmarshal(msg, &req) != nil || req.Type != "subscribe" || req.Channel == "" {
		return "", "", false
	}
	return req.Channel, req.ID, true
}

// Subscribed is the reply to a subscribe request:
// {"type":"subscribed","channel":"bench","id":"1"}.
func Subscribed(channel, id string) []byte {
	b, _ := json.Marshal(subscribeRequest{Type: "subscribed", Channel: channel, ID: id}) // strings always encode
	return b
}

// ErrorReply is the reply to a message a peer does not serve:
// {"type":"error","code":code,"message":message}.
func ErrorReply(code, message string) []byte {
	b, _ := json.Marshal(struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}{"error", code, message})
	return b
}
