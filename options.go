package wspub

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/coder/websocket"
)

// OverflowPolicy says what happens when a message does not fit a connection's send queue.
type OverflowPolicy int

const (
	// EvictSlowConsumer closes the connection with StatusSlowConsumer and reason
	// "slow consumer", discarding what was queued for it. It suits feeds where a gap is
	// worse than a reconnect (progress, notifications, chat). It is the default.
	EvictSlowConsumer OverflowPolicy = iota
	// DropOldest discards the oldest queued messages until the new one fits, and keeps the
	// connection. It suits lossy feeds where only the latest value matters (quotes).
	DropOldest
)

// StatusSlowConsumer is the close code a connection evicted by EvictSlowConsumer gets
// (1013, "try again later"), with the reason "slow consumer".
const StatusSlowConsumer = websocket.StatusTryAgainLater

// Handler handles one client message of a type registered with Hub.Handle. It runs on the
// connection's reader goroutine: messages of one connection are handled one at a time, in
// order, and a slow handler delays that connection's reading (start a goroutine for long
// work). A returned *Error is sent to the client as it is; any other error, or a panic,
// becomes an "internal" error reply and is logged. ctx is cancelled when the connection
// closes.
type Handler func(ctx context.Context, c *Conn, m ClientMessage) error

// Options configures a Hub. The zero value, and a nil *Options, mean defaults; New copies
// the struct, so the caller's value is never changed.
type Options struct {
	// Logger receives structured logs: websocket_connected, websocket_subscribed,
	// websocket_unsubscribed, websocket_disconnected, websocket_rejected and
	// websocket_shutdown at Info; websocket_reaped, websocket_slow_consumer,
	// websocket_messages_dropped and websocket_handler_error at Warn; websocket_panic at
	// Error; per-message events (websocket_message, websocket_error_reply) at Debug only.
	// Default: nil, no logs.
	Logger *slog.Logger

	// Authenticate, if set, runs before the upgrade and establishes the connection's
	// Identity. An error refuses the request with HTTP 401 before anything is allocated
	// for it. Default: nil, every connection is anonymous.
	Authenticate func(r *http.Request) (Identity, error)

	// OriginPatterns lists host patterns of cross-origin pages allowed to connect, matched
	// as coder/websocket's AcceptOptions.OriginPatterns (path.Match, case-insensitive).
	// The request's own host is always allowed. Default: nil, same origin only.
	OriginPatterns []string

	// OnConnect runs after a connection is registered and before its first message is
	// read; use it to put the connection on server-side channels (Hub.Subscribe). A
	// non-nil error closes the connection with 1011 (internal error). Default: nil.
	OnConnect func(ctx context.Context, c *Conn) error

	// OnDisconnect runs once after a connection has left every channel. code and reason
	// are the close code and reason the connection ended with (from either side).
	// Default: nil.
	OnDisconnect func(c *Conn, code websocket.StatusCode, reason string)

	// MaxMessageBytes bounds a client frame; a larger one closes the connection with 1009
	// (message too big). It also bounds a client's "data". Default: 32 KiB.
	MaxMessageBytes int64

	// MaxChannelBytes bounds a channel name. Default: 200.
	MaxChannelBytes int

	// MaxQueueBytes bounds the bytes waiting in one connection's send queue. Default: 1 MiB,
	// enough to absorb a burst of thousands of small messages to a client that reads at
	// full speed but whose writer was scheduled late.
	MaxQueueBytes int

	// MaxQueueMessages, when positive, also bounds the number of queued messages.
	// Default: 0, bounded by bytes only.
	MaxQueueMessages int

	// Overflow says what happens when a send queue is full. Default: EvictSlowConsumer.
	Overflow OverflowPolicy

	// MaxBatch is how many queued messages the writer may pack into one text frame,
	// separated by '\n'. A lone message is never delayed to form a batch. 1 turns batching
	// off. Default: 16.
	MaxBatch int

	// WriteTimeout bounds one write to a connection's socket; a peer that accepts nothing
	// for this long is evicted as a slow consumer. Default: 10s.
	WriteTimeout time.Duration

	// PingInterval is how often the heartbeat pings every connection. Default: 25s.
	PingInterval time.Duration

	// PongTimeout is how long a peer has to answer a ping before it is reaped: closed,
	// removed from its channels and counted in Stats.Reaped. Values of PingInterval or
	// more are lowered to PingInterval. Default: 10s.
	PongTimeout time.Duration

	// CloseTimeout bounds the close handshake: a peer that does not answer a close frame
	// within it has its TCP connection closed. Default: 5s.
	CloseTimeout time.Duration
}

// Defaults applied by New.
const (
	defaultMaxMessageBytes = 32 << 10
	defaultMaxChannelBytes = 200
	defaultMaxQueueBytes   = 1 << 20
	defaultMaxBatch        = 16
	defaultWriteTimeout    = 10 * time.Second
	defaultPingInterval    = 25 * time.Second
	defaultPongTimeout     = 10 * time.Second
	defaultCloseTimeout    = 5 * time.Second
)

// withDefaults returns a copy of opts with every unset field at its default.
func (opts *Options) withDefaults() Options {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	setDefault(&o.MaxMessageBytes, defaultMaxMessageBytes)
	setDefault(&o.MaxChannelBytes, defaultMaxChannelBytes)
	setDefault(&o.MaxQueueBytes, defaultMaxQueueBytes)
	setDefault(&o.MaxBatch, defaultMaxBatch)
	setDefault(&o.WriteTimeout, defaultWriteTimeout)
	setDefault(&o.PingInterval, defaultPingInterval)
	setDefault(&o.PongTimeout, defaultPongTimeout)
	setDefault(&o.CloseTimeout, defaultCloseTimeout)
	if o.PongTimeout > o.PingInterval {
		o.PongTimeout = o.PingInterval
	}
	if o.MaxQueueMessages < 0 {
		o.MaxQueueMessages = 0
	}
	return o
}

func setDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}
