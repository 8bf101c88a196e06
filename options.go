package wspub

import (
	"context"
	"fmt"
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

// Observer receives measurements the hub takes on its hot paths, for metrics beyond
// Stats (github.com/wspub/wspub/prommetrics turns them into Prometheus histograms). The
// hub calls its methods synchronously, from any goroutine: they must be cheap and safe
// for concurrent use.
type Observer interface {
	// Fanout is called after a Publish, Broadcast, SendToUser, client publish or a message
	// from another node (Broker) has been queued for its recipients on this node, with
	// how many there were and how long queueing took.
	Fanout(recipients int, d time.Duration)
	// Eviction is called when a slow consumer is evicted, with what its send queue held.
	Eviction(queuedBytes, queuedMessages int)
}

// Handler handles one client message of a type registered with Hub.Handle. It runs on the
// connection's reader goroutine: messages of one connection are handled one at a time, in
// order, and a slow handler delays that connection's reading (start a goroutine for long
// work). A returned *Error is sent to the client as it is; any other error, or a panic,
// becomes an "internal" error reply and is logged. ctx is cancelled as soon as the
// connection starts closing (the peer closed it or was found gone, the hub or the
// application closed it, Shutdown, Close): a handler that waits must watch it. One that
// ignores it keeps its goroutine, not the connection: the connection is cleaned up
// without waiting for it, and Shutdown and Close wait for it ShutdownGrace at most.
type Handler func(ctx context.Context, c *Conn, m ClientMessage) error

// Options configures a Hub. The zero value, and a nil *Options, mean defaults; New copies
// the struct, so the caller's value is never changed.
type Options struct {
	// Logger receives structured logs: websocket_connected, websocket_subscribed,
	// websocket_unsubscribed, websocket_disconnected and websocket_shutdown at Info;
	// websocket_reaped, websocket_slow_consumer, websocket_messages_dropped and
	// websocket_handler_error at Warn; websocket_panic at Error; per-message events
	// (websocket_message, websocket_error_reply) at Debug only. A refused upgrade request
	// is websocket_rejected, at Warn when it means a misconfiguration (501: mounted behind
	// middleware; 403: an origin OriginPatterns lacks; 401 for a request without any
	// credential) and at Info otherwise, at most once a minute per cause (per origin, for
	// 403), with the refusals not logged since counted in its "suppressed" attribute (see
	// Hub.ServeHTTP). Default: nil, no logs.
	Logger *slog.Logger

	// Authenticate, if set, runs before the upgrade and establishes the connection's
	// Identity. An error, or an Identity that has already expired, refuses the request
	// with HTTP 401 (and WWW-Authenticate: Bearer) before anything is allocated for it;
	// the error is logged, not sent. Default: nil, every connection is anonymous.
	Authenticate func(r *http.Request) (Identity, error)

	// OriginPatterns lists the cross-origin pages allowed to connect. A pattern is matched
	// with path.Match, case-insensitively, against the Origin's host and port
	// ("app.example.com", "*.example.com", "localhost:*"), or against scheme://host:port
	// when it contains "://". "example.com" does not match "evilexample.com" nor
	// "example.com:8443". A page of the hub's own host is always allowed, unless it is an
	// http:// page and the hub is reached over TLS (directly, or through a proxy that says
	// so with X-Forwarded-Proto: https): a page anyone on the network can rewrite does not
	// get the credentials of the secure site. A request without an Origin header is allowed
	// too (not from a browser: browsers always send one on a WebSocket handshake). Any
	// other origin is refused with HTTP 403 before the upgrade, with a text that names the
	// pattern to add. A malformed pattern matches nothing and is logged by New. Default:
	// nil, same origin only.
	OriginPatterns []string

	// InsecureSkipOriginCheck accepts every origin. Any web page can then open a
	// connection with the credentials (cookies) the user's browser holds for your site:
	// use it only when authentication does not rely on cookies. Default: false.
	InsecureSkipOriginCheck bool

	// Authorize, if set, is asked before every subscription a client requests and every
	// client publish (not only at connect). A nil error allows the action; an *Error is
	// sent to the client as it is; any other error becomes a "forbidden" reply. Nothing
	// is subscribed or published on an error. It runs on the connection's reader, without
	// hub locks. Hub.Subscribe, called by the application, does not ask it. Default: nil,
	// every subscription is allowed.
	Authorize func(ctx context.Context, c *Conn, action Action, channel string) error

	// AllowClientPublish lets clients publish with {"type":"publish","channel":...,
	// "data":...}; each publish is also put to Authorize, if set. Subscribers receive it as
	// {"type":"publish","channel":...,"data":...}. Default: false, client publishes are
	// refused with "forbidden".
	AllowClientPublish bool

	// MaxConns bounds the hub's connections; upgrade requests beyond it get HTTP 503.
	// Default: 100 000. Negative: no limit.
	MaxConns int

	// MaxConnsPerUser bounds the connections of one authenticated user (Identity.UserID);
	// beyond it upgrade requests get HTTP 429. Anonymous connections are not counted as a
	// user. Default: 16. Negative: no limit.
	MaxConnsPerUser int

	// MaxSubscriptionsPerConn bounds the channels one connection may be on; a subscribe
	// beyond it gets the error "too_many_subscriptions" (Hub.Subscribe returns
	// ErrTooManySubscriptions). Default: 256. Negative: no limit.
	MaxSubscriptionsPerConn int

	// MaxSubscribeChannels bounds the names one subscribe or unsubscribe may list in
	// "channels" (a batch, which counts as one message against MessageRate); a longer list
	// gets "invalid_message". The welcome message announces it as maxChannels. Default:
	// MaxSubscriptionsPerConn, or 256 when that has no limit. Negative: no limit (a frame
	// is still bounded by MaxMessageBytes).
	MaxSubscribeChannels int

	// MessageRate is how many messages per second one client may send, with bursts of up
	// to MessageBurst; a message over the rate gets a "rate_limited" reply and is not
	// processed. Default: 20 per second, bursts of 50. Negative MessageRate: no limit.
	MessageRate  float64
	MessageBurst int

	// MaxFrameRate bounds the WebSocket frames of every kind one client may send per
	// second, with bursts of up to MaxFrameBurst: pings, pongs, close frames and the
	// fragments of a message count as well as whole messages, which no other limit sees
	// one by one. A client over the rate is not refused but slowed down: the hub reads
	// its frames no faster than the rate, so a flooding client only slows itself down.
	// Such a connection is counted once in Stats.FrameFloods and logged
	// (websocket_frame_flood). New raises them to at least twice MessageRate and
	// MessageBurst. Default: 1 000 frames per second, bursts of 1 000. Negative
	// MaxFrameRate: no limit.
	MaxFrameRate  float64
	MaxFrameBurst int

	// MaxRateLimited is how many "rate_limited" replies a client may earn in a burst
	// (refilled at one per second) before the connection is closed with 1008 (policy
	// violation). Default: 20.
	MaxRateLimited int

	// MaxInvalidMessages is how many invalid messages in a row (error replies
	// invalid_message, invalid_channel or unknown_type) a client may send before the
	// connection is closed with 1008 (policy violation). A valid message resets the
	// count. Default: 20. Negative: no limit.
	MaxInvalidMessages int

	// OnConnect runs after a connection is registered and before its first message is
	// read; use it to put the connection on server-side channels (Hub.Subscribe). An
	// *Error refuses the connection: close 1008 (policy violation) with the Error's
	// Message as the reason; any other error closes it with 1011 (internal error).
	// Default: nil.
	OnConnect func(ctx context.Context, c *Conn) error

	// OnDisconnect runs once after a connection has left every channel. code and reason
	// are the close code and reason the connection ended with (from either side). It
	// normally runs on the connection's reader, after its last Handler; but when the
	// connection is closed while a Handler or OnConnect ignores its cancelled context, it
	// runs on a goroutine of its own, while that code is still running. Default: nil.
	OnDisconnect func(c *Conn, code websocket.StatusCode, reason string)

	// Observer receives measurements for metrics: the duration of each fan-out and the
	// queue of each evicted slow consumer (see Observer and the prommetrics module).
	// Default: nil, nothing is measured.
	Observer Observer

	// Broker connects this hub to the hubs of other nodes, so that Publish, Broadcast and
	// SendToUser reach clients connected anywhere (see Broker). The hub starts it in New
	// and closes it at the end of Shutdown or Close. Default: nil, a single node.
	Broker Broker

	// BrokerTimeout bounds each broker operation (publish, subscribe, unsubscribe), also
	// when the caller's context has no deadline. Default: 2s.
	BrokerTimeout time.Duration

	// MaxMessageBytes bounds a client frame; a larger one closes the connection with 1009
	// (message too big). It also bounds a client's "data". Default: 32 KiB.
	MaxMessageBytes int64

	// MaxChannelBytes bounds a channel name. Default: 200.
	MaxChannelBytes int

	// MaxQueueBytes bounds the bytes waiting in one connection's send queue. A message
	// that is larger on its own could never be queued: it is refused before it reaches
	// any queue (Publish returns ErrMessageTooLarge; a client publish gets a
	// "message_too_large" reply), instead of evicting every subscriber. New raises a value
	// below 1 KiB + 2×MaxChannelBytes, which could not hold the protocol's own replies, and
	// logs wspub_options_adjusted, as it does when AllowClientPublish lets clients send
	// messages larger than a queue. Default: 1 MiB, enough to absorb a burst of thousands
	// of small messages to a client that reads at full speed but whose writer was
	// scheduled late.
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
	// removed from its channels and counted in Stats.Reaped. Only a pong that carries the
	// ping's payload counts. Values of PingInterval or more are lowered to PingInterval.
	// Default: 10s.
	PongTimeout time.Duration

	// CloseTimeout bounds flushing the queue and the close handshake: a peer that does not
	// answer a close frame within it has its TCP connection closed. coder/websocket waits
	// at most 5s for the peer's close frame itself, so values above 5s lengthen only the
	// flush. Default: 5s.
	CloseTimeout time.Duration
}

// Defaults applied by New.
const (
	defaultBrokerTimeout           = 2 * time.Second
	defaultMaxConns                = 100_000
	defaultMaxConnsPerUser         = 16
	defaultMaxSubscriptionsPerConn = 256
	defaultMessageRate             = 20
	defaultMessageBurst            = 50
	defaultMaxFrameRate            = 1000
	defaultMaxFrameBurst           = 1000
	defaultMaxRateLimited          = 20
	defaultMaxInvalidMessages      = 20
	defaultMaxMessageBytes         = 32 << 10
	defaultMaxChannelBytes         = 200
	defaultMaxQueueBytes           = 1 << 20
	defaultMaxBatch                = 16
	defaultWriteTimeout            = 10 * time.Second
	defaultPingInterval            = 25 * time.Second
	defaultPongTimeout             = 10 * time.Second
	defaultCloseTimeout            = 5 * time.Second
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
	setLimit(&o.MaxConns, defaultMaxConns)
	setLimit(&o.MaxConnsPerUser, defaultMaxConnsPerUser)
	setLimit(&o.MaxSubscriptionsPerConn, defaultMaxSubscriptionsPerConn)
	switch {
	case o.MaxSubscribeChannels == 0 && o.MaxSubscriptionsPerConn > 0:
		o.MaxSubscribeChannels = o.MaxSubscriptionsPerConn
	case o.MaxSubscribeChannels == 0:
		o.MaxSubscribeChannels = defaultMaxSubscriptionsPerConn
	case o.MaxSubscribeChannels < 0:
		o.MaxSubscribeChannels = 0
	}
	setLimit(&o.MaxInvalidMessages, defaultMaxInvalidMessages)
	if o.MessageRate == 0 {
		o.MessageRate = defaultMessageRate // negative stays: no limit
	}
	setDefault(&o.MessageBurst, defaultMessageBurst)
	setDefault(&o.MaxRateLimited, defaultMaxRateLimited)
	setDefault(&o.BrokerTimeout, defaultBrokerTimeout)
	setDefault(&o.MaxMessageBytes, defaultMaxMessageBytes)
	setDefault(&o.MaxChannelBytes, defaultMaxChannelBytes)
	setDefault(&o.MaxQueueBytes, defaultMaxQueueBytes)
	setDefault(&o.MaxBatch, defaultMaxBatch)
	setDefault(&o.WriteTimeout, defaultWriteTimeout)
	setDefault(&o.PingInterval, defaultPingInterval)
	setDefault(&o.PongTimeout, defaultPongTimeout)
	setDefault(&o.CloseTimeout, defaultCloseTimeout)
	if o.MaxFrameRate == 0 {
		o.MaxFrameRate = defaultMaxFrameRate // negative stays: no limit
	}
	setDefault(&o.MaxFrameBurst, defaultMaxFrameBurst)
	if o.MaxQueueMessages < 0 {
		o.MaxQueueMessages = 0
	}
	return o
}

// adjust corrects the combinations of options that cannot work, in place, and
// describes each correction for New to log.
func (o *Options) adjust() []string {
	var notes []string
	if o.PongTimeout > o.PingInterval {
		notes = append(notes, fmt.Sprintf("PongTimeout %v lowered to PingInterval %v", o.PongTimeout, o.PingInterval))
		o.PongTimeout = o.PingInterval
	}
	if o.MaxFrameRate > 0 && o.MaxFrameRate < 1 {
		notes = append(notes, fmt.Sprintf("MaxFrameRate %g raised to 1 frame per second", o.MaxFrameRate))
		o.MaxFrameRate = 1
	}
	if o.MaxFrameRate > 0 && o.MessageRate > 0 {
		if o.MaxFrameRate < 2*o.MessageRate {
			notes = append(notes, fmt.Sprintf("MaxFrameRate %g raised to twice MessageRate: %g", o.MaxFrameRate, 2*o.MessageRate))
			o.MaxFrameRate = 2 * o.MessageRate
		}
		if o.MaxFrameBurst < 2*o.MessageBurst {
			notes = append(notes, fmt.Sprintf("MaxFrameBurst %d raised to twice MessageBurst: %d", o.MaxFrameBurst, 2*o.MessageBurst))
			o.MaxFrameBurst = 2 * o.MessageBurst
		}
	}
	if least := minQueueBytes(o); o.MaxQueueBytes < least {
		notes = append(notes, fmt.Sprintf("MaxQueueBytes %d raised to %d, the least that holds the protocol's own replies", o.MaxQueueBytes, least))
		o.MaxQueueBytes = least
	}
	if o.AllowClientPublish && maxClientPublishFrame(o) > o.MaxQueueBytes {
		notes = append(notes, fmt.Sprintf("MaxQueueBytes %d is smaller than the largest client publish (MaxMessageBytes %d): "+
			"larger client publishes are refused with message_too_large", o.MaxQueueBytes, o.MaxMessageBytes))
	}
	return notes
}

// minQueueBytes is the least MaxQueueBytes that holds any reply of the protocol's own:
// an error about the longest channel name, with its message.
func minQueueBytes(o *Options) int {
	return 1024 + 2*o.MaxChannelBytes
}

// maxClientPublishFrame is the size of the largest envelope a client publish can
// produce: its data (at most MaxMessageBytes), its channel name and the envelope.
func maxClientPublishFrame(o *Options) int {
	return int(o.MaxMessageBytes) + 2*o.MaxChannelBytes + 64
}

func setDefault[T int | int64 | float64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// setLimit applies a limit's default to 0 and turns a negative value into "no limit" (0
// after New).
func setLimit(v *int, def int) {
	switch {
	case *v == 0:
		*v = def
	case *v < 0:
		*v = 0
	}
}
