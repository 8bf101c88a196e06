package wspub

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Subprotocol is the WebSocket subprotocol of the wire protocol in PROTOCOL.md. The hub
// echoes it when a client offers it; a client that offers none is served the same protocol.
const Subprotocol = "wspub.v1"

// Message types the protocol itself uses. Applications cannot publish or handle them.
const (
	typeSubscribe    = "subscribe"
	typeUnsubscribe  = "unsubscribe"
	typePing         = "ping"
	typePublish      = "publish"
	typeSubscribed   = "subscribed"
	typePublished    = "published"
	typeUnsubscribed = "unsubscribed"
	typePong         = "pong"
	typeError        = "error"
	typeWelcome      = "welcome"
)

// Protocol limits that are not configurable: they bound what a client can make the
// server hold or echo.
const (
	maxTypeBytes = 64 // bytes in a message type
	maxIDBytes   = 64 // bytes in a client message id
	maxDataDepth = 32 // nesting of arrays and objects in a client's data
)

// Message is an application message sent to clients: by Publish (with the channel added),
// Broadcast, SendToUser or Conn.Send. Data is any value encoding/json can marshal; a
// json.RawMessage is validated and passed through without re-encoding. A nil Data is
// left out of the envelope.
type Message struct {
	Type string
	Data any
}

// ClientMessage is one message a client sent, as a Handler receives it. It has passed
// validation: Type is set and not reserved, ID is at most 64 bytes, Channel (if the client
// sent one) follows the naming rules, and Data (nil if absent) is valid JSON. Data may be
// kept after the handler returns. Answer it with Conn.Reply.
type ClientMessage struct {
	Type    string
	ID      string
	Channel string
	Data    json.RawMessage

	channels []batchName // the "channels" of a batch subscribe or unsubscribe
}

// batchName is one entry of a batch's "channels", as decoded. lone marks a name with an
// unpaired surrogate escape, which decoding turned into U+FFFD: it is refused.
type batchName struct {
	name string
	lone bool
}

// isReserved reports whether typ is one of the protocol's own message types.
func isReserved(typ string) bool {
	switch typ {
	case typeSubscribe, typeUnsubscribe, typePing, typePublish,
		typeSubscribed, typeUnsubscribed, typePublished, typePong, typeError, typeWelcome:
		return true
	}
	return false
}

// validName reports whether s is 1..maxBytes bytes of valid UTF-8 with no whitespace or
// control characters. Channel names and message types share these rules.
func validName(s string, maxBytes int) bool {
	if len(s) == 0 || len(s) > maxBytes {
		return false
	}
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b <= ' ' || b == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		// RuneError of size 1 is an invalid byte; a literal U+FFFD (3 bytes) is valid.
		if (r == utf8.RuneError && size == 1) || unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
		i += size
	}
	return true
}

// cutUTF8 returns s cut to at most n bytes at a character boundary.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// validateType checks an application message type.
func validateType(typ string) error {
	if !validName(typ, maxTypeBytes) {
		return fmt.Errorf("%w: %q", ErrInvalidType, typ)
	}
	if isReserved(typ) {
		return fmt.Errorf("%w: %q", ErrReservedType, typ)
	}
	return nil
}

// encodeMessage validates m and encodes it as one envelope. channel may be empty (direct
// messages and broadcasts carry none).
func encodeMessage(channel string, m Message) ([]byte, error) {
	if err := validateType(m.Type); err != nil {
		return nil, err
	}
	return encodeEnvelope(m.Type, channel, m.Data)
}

// encodeEnvelope encodes a message of any type, reserved ones included.
func encodeEnvelope(typ, channel string, d any) ([]byte, error) {
	var data []byte
	switch d := d.(type) {
	case nil:
	case json.RawMessage:
		if !json.Valid(d) {
			return nil, ErrInvalidData
		}
		data = d
		if bytes.IndexByte(d, '\n') >= 0 {
			// A batch frame separates messages with '\n', so none may contain one.
			var buf bytes.Buffer
			if err := json.Compact(&buf, d); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrInvalidData, err)
			}
			data = buf.Bytes()
		}
	default:
		var err error
		if data, err = json.Marshal(d); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidData, err)
		}
	}
	if !utf8.Valid(data) { // json.Valid does not check it, and a RawMessage passes through
		return nil, fmt.Errorf("%w: not valid UTF-8", ErrInvalidData)
	}
	b := make([]byte, 0, len(typ)+len(channel)+len(data)+32)
	b = append(b, `{"type":`...)
	b = appendJSONString(b, typ)
	if channel != "" {
		b = append(b, `,"channel":`...)
		b = appendJSONString(b, channel)
	}
	if data != nil {
		b = append(b, `,"data":`...)
		b = append(b, data...)
	}
	return append(b, '}'), nil
}

// encodeReply encodes a protocol reply (subscribed, unsubscribed, pong).
func encodeReply(typ, channel, id string) []byte {
	b := make([]byte, 0, 48+len(channel)+len(id))
	b = append(b, `{"type":`...)
	b = appendJSONString(b, typ)
	if channel != "" {
		b = append(b, `,"channel":`...)
		b = appendJSONString(b, channel)
	}
	if id != "" {
		b = append(b, `,"id":`...)
		b = appendJSONString(b, id)
	}
	return append(b, '}')
}

// encodeError encodes an error reply. channel, if not empty, is the channel the error is
// about.
func encodeError(e *Error, channel, id string) []byte {
	b := make([]byte, 0, 64+len(e.Code)+len(e.Message)+len(channel)+len(id))
	b = append(b, `{"type":"error","code":`...)
	b = appendJSONString(b, e.Code)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, e.Message)
	if channel != "" {
		b = append(b, `,"channel":`...)
		b = appendJSONString(b, channel)
	}
	if id != "" {
		b = append(b, `,"id":`...)
		b = appendJSONString(b, id)
	}
	return append(b, '}')
}

// withID returns the envelope b (as encodeEnvelope makes it) with an "id" added, or b
// itself for an empty id.
func withID(b []byte, id string) []byte {
	if id == "" {
		return b
	}
	b = append(b[:len(b)-1:len(b)-1], `,"id":`...) // a copy: b may be shared
	b = appendJSONString(b, id)
	return append(b, '}')
}

// welcomeLimits is the "limits" object of the welcome message for the effective options
// o: a limit that is off is null.
func welcomeLimits(o *Options) []byte {
	num := func(b []byte, on bool, v float64) []byte {
		if !on {
			return append(b, "null"...)
		}
		return strconv.AppendFloat(b, v, 'g', -1, 64)
	}
	b := []byte(`{"messageRate":`)
	b = num(b, o.MessageRate > 0, o.MessageRate)
	b = append(b, `,"messageBurst":`...)
	b = num(b, o.MessageRate > 0, float64(o.MessageBurst))
	b = append(b, `,"maxSubscriptions":`...)
	b = num(b, o.MaxSubscriptionsPerConn > 0, float64(o.MaxSubscriptionsPerConn))
	b = append(b, `,"maxChannels":`...)
	b = num(b, o.MaxSubscribeChannels > 0, float64(o.MaxSubscribeChannels))
	b = append(b, `,"maxMessageBytes":`...)
	b = num(b, true, float64(o.MaxMessageBytes))
	b = append(b, `,"maxChannelBytes":`...)
	b = num(b, true, float64(o.MaxChannelBytes))
	return append(b, '}')
}

// encodeWelcome encodes the welcome message of connection id; limits is welcomeLimits'.
func encodeWelcome(id string, limits []byte) []byte {
	b := make([]byte, 0, 48+len(id)+len(limits))
	b = append(b, `{"type":"welcome","data":{"conn":`...)
	b = appendJSONString(b, id)
	b = append(b, `,"limits":`...)
	b = append(b, limits...)
	return append(b, "}}"...)
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD; control
// characters, quotes and backslashes are escaped, so the result never holds a raw newline.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
