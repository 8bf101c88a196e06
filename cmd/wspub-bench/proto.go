package main

import (
	"bytes"
	"encoding/json"

	"github.com/wspub/wspub"
)

// The client protocols run speaks (-proto).
const (
	protoWspub      = "wspub"      // wspub.v1: subscribe, then bench messages split on '\n'
	protoCentrifuge = "centrifuge" // centrifuge's JSON protocol v2, for the side-by-side harness
)

// clientProto is what a client protocol needs of the load tool: the subprotocol it asks
// for, the frame that subscribes, and how to tell the subscription's reply, an error
// reply and a server ping from the bench messages. Both protocols put the bench message's
// data, {"seq":N,"ts":N,...}, in every message, one message per '\n'-separated line.
type clientProto struct {
	subprotocols []string
	subscribe    func(channel string) []byte // the first frame a client sends
	ack          []byte                      // a line with it is the subscription's reply
	errorKey     []byte                      // a line with it is an error reply
	ping         []byte                      // a line equal to it is a ping, answered with pong; nil: none
	pong         []byte
}

// protoFor returns the protocol called name; "" is wspub.
func protoFor(name string) (clientProto, bool) {
	switch name {
	case protoWspub, "":
		return clientProto{
			subprotocols: []string{wspub.Subprotocol},
			subscribe: func(channel string) []byte {
				ch, _ := json.Marshal(channel) // a string always encodes
				return append(append([]byte(`{"type":"subscribe","channel":`), ch...), `,"id":"1"}`...)
			},
			ack:      []byte(`"type":"subscribed"`),
			errorKey: []byte(`"type":"error"`),
		}, true
	case protoCentrifuge:
		// A connect command and a subscribe command in one frame, as centrifuge's own
		// clients batch them; the reply to command 2 is the subscription's. The server
		// pings with an empty reply, {}, and the client answers with an empty command.
		return clientProto{
			subprotocols: []string{"centrifuge-json"},
			subscribe: func(channel string) []byte {
				ch, _ := json.Marshal(channel)
				return append(append([]byte(`{"id":1,"connect":{}}`+"\n"+`{"id":2,"subscribe":{"channel":`), ch...), `}}`...)
			},
			ack:      []byte(`{"id":2,"subscribe":`),
			errorKey: []byte(`"error":{`),
			ping:     []byte(`{}`),
			pong:     []byte(`{}`),
		}, true
	}
	return clientProto{}, false
}

// isPing reports whether line is the protocol's ping.
func (p *clientProto) isPing(line []byte) bool {
	return p.ping != nil && bytes.Equal(bytes.TrimSpace(line), p.ping)
}

func knownProto(name string) bool { _, ok := protoFor(name); return ok }
