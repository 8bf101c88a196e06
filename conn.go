package wspub

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"
)

// Conn is one client connection of a Hub. Its methods are safe for concurrent use. A Conn
// is only valid while it is open; keep its ID, not the *Conn, to address it later.
type Conn struct {
	hub  *Hub
	ws   *websocket.Conn
	raw  net.Conn     // the hijacked TCP connection, for write deadlines and forced closes
	wire *frameWriter // what ws writes to: raw, with frames gathered by the writer loop

	id, userID, origin, userAgent, remoteAddr string
	connectedAt                               time.Time
	expires                                   time.Time
	claims                                    map[string]any

	ctx    context.Context // cancelled when the connection ends; handlers get it
	cancel context.CancelFunc

	subs map[string]struct{} // reverse index of channels; guarded by hub.reg.mu

	rate       *rate.Limiter // client messages; nil without a limit
	strikes    *rate.Limiter // rate_limited replies before a policy close
	invalidRun int           // invalid messages in a row; reader only

	lastPong atomic.Int64 // unix nanoseconds of the last pong that answered a ping, or of the connect
	closeBy  atomic.Int64 // unix nanoseconds by which the close must be done; 0 while open

	frames *rate.Limiter // client frames of any kind (Options.MaxFrameRate); nil without a limit
	flood  atomic.Bool   // the frame rate was exceeded (logged once)

	// mu guards the connection's state (see closing.go) and its send side.
	mu          sync.Mutex
	state       connState
	closeCode   websocket.StatusCode // why the connection ends, once it is closing
	closeReason string
	handshake   bool // the writer must still run the close handshake
	busy        bool // the reader is running a client message or a hook (beginDispatch)
	cleaned     bool // cleanup has started

	q          queue
	writing    bool  // a writer goroutine is running
	pingDue    bool  // the writer must send the heartbeat's ping
	dropLogged bool  // the first DropOldest drop was logged
	progress   int64 // Hub.clock when the writer last took messages, or the queue stopped being empty

	// The writer loop writes frames with write, then calls flush (if not nil) to hand them
	// to the kernel: writeWS and flushWS, unless a test or benchmark swaps them.
	write   func(p []byte) error
	flush   func() error
	writeFn func() // c.writeLoop, bound once so starting a writer allocates nothing
}

// ID returns the connection's ID, unique within its hub and, with a random per-hub
// prefix, across hubs.
func (c *Conn) ID() string { return c.id }

// UserID returns the authenticated user's ID, or "" for an anonymous connection.
func (c *Conn) UserID() string { return c.userID }

// Claims returns the application claims of the connection's Identity (nil if none).
// The map must not be modified.
func (c *Conn) Claims() map[string]any { return c.claims }

// Origin returns the Origin header of the upgrade request, cut to its first 256 bytes
// (a connection keeps no more of any request string).
func (c *Conn) Origin() string { return c.origin }

// UserAgent returns the User-Agent header of the upgrade request, cut to its first 256
// bytes.
func (c *Conn) UserAgent() string { return c.userAgent }

// RemoteAddr returns the peer address of the upgrade request (http.Request.RemoteAddr:
// behind a proxy, the proxy's address), cut to its first 256 bytes.
func (c *Conn) RemoteAddr() string { return c.remoteAddr }

// ConnectedAt returns when the connection was upgraded.
func (c *Conn) ConnectedAt() time.Time { return c.connectedAt }

// Context returns a context that is cancelled as soon as the connection starts closing
// (whoever closes it), before the close handshake. It carries the values of the upgrade
// request's context.
func (c *Conn) Context() context.Context { return c.ctx }

// Subscriptions returns the channels the connection is subscribed to, in no order.
func (c *Conn) Subscriptions() []string { return c.hub.reg.channelsOf(c) }

// Send queues m for this connection alone, without a channel. It never blocks on the
// network: it returns ErrConnClosed if the connection is closing, ErrMessageTooLarge
// (sending nothing) for a message larger than Options.MaxQueueBytes, and
// ErrSlowConsumer if the message overflowed the send queue and the connection was
// evicted for it.
func (c *Conn) Send(ctx context.Context, m Message) error { return c.send(ctx, m, "") }

// Reply sends m to this connection as the answer to the client message to: with the
// "id" of to, so that the client can match it to its request (without an id if to has
// none). It queues m as Send does and returns Send's errors. A Handler answers with it:
//
//	hub.Handle("lookup", func(ctx context.Context, c *wspub.Conn, m wspub.ClientMessage) error {
//		return c.Reply(ctx, m, wspub.Message{Type: "found", Data: map[string]int{"n": 1}})
//	})
func (c *Conn) Reply(ctx context.Context, to ClientMessage, m Message) error {
	return c.send(ctx, m, to.ID)
}

// send queues m for this connection alone, with the "id" of the client message it
// answers ("" for none).
func (c *Conn) send(ctx context.Context, m Message, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	frame, err := encodeMessage("", m)
	if err == nil {
		frame = withID(frame, id)
		err = c.hub.fitsQueue(frame)
	}
	if err != nil {
		return err
	}
	return c.enqueue(frame)
}

// Close closes the connection with the given code and reason and returns at once. What
// is already queued for the connection is still sent, then the close handshake runs;
// Options.CloseTimeout bounds the two together. The connection's context is cancelled at
// once, and nothing can be queued after Close. The connection leaves its channels when
// the peer answers or the timeout passes. A reason is cut to the 123 bytes a close frame
// holds, and bytes that are not UTF-8 are replaced. Calling Close again does nothing.
func (c *Conn) Close(code websocket.StatusCode, reason string) error {
	c.closeWith(code, reason)
	return nil
}

// readLoop reads and dispatches client messages until the connection ends. It is the
// only goroutine an idle connection has.
func (c *Conn) readLoop(readCtx context.Context) error {
	for {
		typ, b, err := c.ws.Read(readCtx)
		if err != nil {
			return err
		}
		if !c.beginDispatch() {
			continue // draining until the peer answers our close
		}
		switch {
		case typ != websocket.MessageText:
			c.hub.stats.invalid.Add(1)
			c.closeWith(websocket.StatusUnsupportedData, "binary frames are not supported")
		case c.allowMessage(b):
			c.dispatch(b)
		}
		c.endDispatch()
	}
}

// canHijack reports whether w, or a ResponseWriter it unwraps to, can be hijacked.
// A timeout or compression middleware in front of the hub usually cannot.
func canHijack(w http.ResponseWriter) bool {
	for {
		switch t := w.(type) {
		case http.Hijacker:
			return true
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return false
		}
	}
}
