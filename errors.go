package wspub

import (
	"errors"
	"fmt"
)

// Sentinel errors returned by the Hub and Conn methods. Test for them with errors.Is.
var (
	// ErrHubClosed is returned by Publish and friends once Shutdown or Close has started.
	ErrHubClosed = errors.New("wspub: hub closed")
	// ErrConnClosed is returned by Conn.Send once the connection is closing.
	ErrConnClosed = errors.New("wspub: connection closed")
	// ErrConnNotFound is returned by Hub.Subscribe and Hub.Unsubscribe for an unknown connection ID.
	ErrConnNotFound = errors.New("wspub: connection not found")
	// ErrInvalidUser is returned by SendToUser for the empty user ID (anonymous connections
	// cannot be addressed as a user).
	ErrInvalidUser = errors.New("wspub: empty user ID")
	// ErrInvalidChannel is returned for a channel name that breaks the naming rules (see PROTOCOL.md).
	ErrInvalidChannel = errors.New("wspub: invalid channel name")
	// ErrInvalidType is returned for a message type that is empty, too long or has
	// whitespace or control characters.
	ErrInvalidType = errors.New("wspub: invalid message type")
	// ErrReservedType is returned when an application tries to publish or handle a type
	// the protocol itself uses (subscribe, subscribed, error, ...).
	ErrReservedType = errors.New("wspub: message type is reserved by the protocol")
	// ErrInvalidData is returned when Message.Data cannot be encoded as JSON.
	ErrInvalidData = errors.New("wspub: message data is not valid JSON")
	// ErrMessageTooLarge is returned when an encoded message is larger than a connection's
	// send queue (Options.MaxQueueBytes) and so could never be delivered.
	ErrMessageTooLarge = errors.New("wspub: message larger than the send queue")
	// ErrTooManySubscriptions is returned by Hub.Subscribe when the connection is on
	// Options.MaxSubscriptionsPerConn channels already.
	ErrTooManySubscriptions = errors.New("wspub: too many subscriptions")
	// ErrSlowConsumer is returned by Conn.Send when the message overflowed the connection's
	// send queue and the connection was evicted.
	ErrSlowConsumer = errors.New("wspub: slow consumer evicted")
)

// Error codes sent to clients in {"type":"error","code":...} replies. They are stable:
// clients may switch on them.
const (
	CodeInvalidMessage       = "invalid_message"
	CodeUnknownType          = "unknown_type"
	CodeInvalidChannel       = "invalid_channel"
	CodeForbidden            = "forbidden"
	CodeTooManySubscriptions = "too_many_subscriptions"
	CodeRateLimited          = "rate_limited"
	CodeMessageTooLarge      = "message_too_large"
	CodeInternal             = "internal"
)

// Error is an error reply for a client. A Handler that returns an *Error has its Code and
// Message sent to the client as they are; any other error becomes CodeInternal with a
// generic message, so that internal details never leak to clients.
type Error struct {
	Code    string // one of the Code constants, or an application code
	Message string // human-readable; sent to the client
}

// Error implements the error interface.
func (e *Error) Error() string {
	return fmt.Sprintf("wspub: %s: %s", e.Code, e.Message)
}
