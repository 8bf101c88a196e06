// Package wsframe builds the WebSocket frames a client sends (RFC 6455 section 5.2),
// for the tools and tests that speak WebSocket on a bare TCP connection: to leave with a
// FIN or an RST, flood control frames or fragments, or never answer a ping, which no
// client library does. It imports only the standard library.
package wsframe

import "encoding/binary"

// Opcodes.
const (
	OpContinuation = 0x0
	OpText         = 0x1
	OpBinary       = 0x2
	OpClose        = 0x8
	OpPing         = 0x9
	OpPong         = 0xa
)

// AppendClient appends one client frame to b: opcode op, FIN if fin, the payload
// masked with key (a zero key leaves it as it is).
func AppendClient(b []byte, op byte, fin bool, key uint32, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, b0, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, b0, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, b0, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = binary.BigEndian.AppendUint32(b, key)
	m := b[len(b)-4:]
	start := len(b)
	b = append(b, payload...)
	if key != 0 {
		for i := range payload {
			b[start+i] ^= m[i&3]
		}
	}
	return b
}
