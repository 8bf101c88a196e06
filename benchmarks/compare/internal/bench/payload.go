// Package bench is the control surface every peer server of the side-by-side harness
// shares with wspub-bench serve: POST /publish publishes numbered, timestamped messages,
// GET /stats reports the runtime's memory and goroutines, and the wspub-protocol subscribe
// request and reply that the load tool speaks.
package bench

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Layout says where the bench data sits in what a client receives: Publish is given
// Prefix, the data and Suffix, and the server adds Extra bytes of its own around them on
// the wire (centrifuge's push reply; 0 for the servers that send what they are given).
type Layout struct {
	Prefix, Suffix string
	Extra          int
}

// EnvelopeLayout is wspub's envelope, {"type":"bench","channel":C,"data":D}, which the
// servers that speak wspub's protocol send as it is.
func EnvelopeLayout(channel string) Layout {
	ch, _ := json.Marshal(channel) // a string always encodes
	return Layout{Prefix: `{"type":"bench","channel":` + string(ch) + `,"data":`, Suffix: `}`}
}

// message builds bench messages: Prefix, {"seq":i,"ts":nanos,"pad":"xxx"}, Suffix, the
// data padded so that what a client receives is size bytes when it can be.
type message struct {
	layout Layout
	pad    string
	size   int
}

func newMessage(l Layout, size int) *message {
	return &message{layout: l, pad: strings.Repeat("x", size), size: size}
}

// build returns a new message: the servers keep it in their queues.
func (m *message) build(seq int, ts int64) []byte {
	b := make([]byte, 0, max(m.size, 64)+len(m.layout.Prefix)+len(m.layout.Suffix))
	b = append(b, m.layout.Prefix...)
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"pad":"`...)
	if pad := m.size - m.layout.Extra - len(b) - len(`"}`) - len(m.layout.Suffix); pad > 0 {
		b = append(b, m.pad[:pad]...)
	}
	b = append(b, `"}`...)
	return append(b, m.layout.Suffix...)
}

// wireLen is the size of msg as a client receives it.
func (m *message) wireLen(msg []byte) int { return m.layout.Extra + len(msg) }
