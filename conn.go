package wspub

import (
	"context"
	"errors"
	"log/slog"
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

	lastPong atomic.Int64 // unix nanoseconds of the last pong, or of the connect
	closeBy  atomic.Int64 // unix nanoseconds by which the close must be done; 0 while open

	// Send side; mu guards everything below it.
	mu          sync.Mutex
	q           queue
	writing     bool // a writer goroutine is running
	closing     bool // no more messages are accepted
	sendClose   bool // the writer must run the close handshake
	dropLogged  bool // the first DropOldest drop was logged
	closeCode   websocket.StatusCode
	closeReason string
	progress    int64 // Hub.clock when the writer last took messages, or the queue stopped being empty

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

// Origin returns the Origin header of the upgrade request.
func (c *Conn) Origin() string { return c.origin }

// UserAgent returns the User-Agent header of the upgrade request.
func (c *Conn) UserAgent() string { return c.userAgent }

// RemoteAddr returns the peer address of the upgrade request (http.Request.RemoteAddr:
// behind a proxy, the proxy's address).
func (c *Conn) RemoteAddr() string { return c.remoteAddr }

// ConnectedAt returns when the connection was upgraded.
func (c *Conn) ConnectedAt() time.Time { return c.connectedAt }

// Context returns a context that is cancelled when the connection ends. It carries the
// values of the upgrade request's context.
func (c *Conn) Context() context.Context { return c.ctx }

// Subscriptions returns the channels the connection is subscribed to, in no order.
func (c *Conn) Subscriptions() []string { return c.hub.reg.channelsOf(c) }

// Send queues m for this connection alone, without a channel. It never blocks on the
// network: it returns ErrConnClosed if the connection is closing, and ErrSlowConsumer if
// the message overflowed the send queue and the connection was evicted for it.
func (c *Conn) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	frame, err := c.hub.encode("", m)
	if err != nil {
		return err
	}
	return c.enqueue(frame)
}

// Close closes the connection with the given code and reason and returns at once. What
// is already queued for the connection is still sent, then the close handshake runs;
// Options.CloseTimeout bounds the two together. Nothing can be queued after Close. The
// connection leaves its channels when the peer answers or the timeout passes. Calling
// Close again does nothing.
func (c *Conn) Close(code websocket.StatusCode, reason string) error {
	c.closeWith(code, reason)
	return nil
}

// closeWith marks the connection closing and has its writer flush the queue and run the
// close handshake.
func (c *Conn) closeWith(code websocket.StatusCode, reason string) {
	c.mu.Lock()
	if !c.beginCloseLocked(code, reason, false) {
		c.mu.Unlock()
		return
	}
	c.sendClose = true
	c.startWriterLocked()
	c.mu.Unlock()
}

// abort closes the TCP connection at once, with no handshake: for peers that are gone
// or cannot take another byte. code and reason are what OnDisconnect and the logs see.
func (c *Conn) abort(code websocket.StatusCode, reason string) {
	c.mu.Lock()
	c.beginCloseLocked(code, reason, true)
	c.mu.Unlock()
	_ = c.raw.Close()
}

// beginCloseLocked records why the connection ends and, if discard is set, empties its
// queue, counting the messages as dropped. It reports false if the connection was
// already closing. c.mu must be held.
func (c *Conn) beginCloseLocked(code websocket.StatusCode, reason string, discard bool) bool {
	if c.closing {
		if discard { // an abort overtakes a graceful close
			c.discardLocked()
		}
		return false
	}
	c.closing = true
	c.closeCode, c.closeReason = code, reason
	// From now on every write, and so the whole close, is bounded by CloseTimeout: a peer
	// that stopped reading must not hold the connection for WriteTimeout per frame.
	deadline := time.Now().Add(c.hub.opts.CloseTimeout)
	c.closeBy.Store(deadline.UnixNano())
	_ = c.raw.SetWriteDeadline(deadline)
	if discard {
		c.discardLocked()
	}
	return true
}

func (c *Conn) discardLocked() {
	if n := c.q.reset(&c.hub.segments); n > 0 {
		c.hub.stats.dropped.Add(uint64(n))
	}
}

// closeHandshake sends a close frame and waits for the peer's, until the close deadline.
func (c *Conn) closeHandshake(code websocket.StatusCode, reason string) {
	if c.ws == nil { // a benchmark's connection without a socket
		return
	}
	force := time.AfterFunc(time.Until(time.Unix(0, c.closeBy.Load())), func() { _ = c.raw.Close() })
	defer force.Stop()
	_ = c.ws.Close(code, reason)
}

// onPong stamps pongs for the heartbeat.
func (c *Conn) onPong(context.Context, []byte) {
	c.lastPong.Store(time.Now().UnixNano())
}

// readLoop reads and dispatches client messages until the connection ends. It is the
// only goroutine an idle connection has.
func (c *Conn) readLoop(readCtx context.Context) error {
	for {
		typ, b, err := c.ws.Read(readCtx)
		if err != nil {
			return err
		}
		if c.isClosing() {
			continue // draining until the peer answers our close
		}
		if typ != websocket.MessageText {
			c.hub.stats.invalid.Add(1)
			c.closeWith(websocket.StatusUnsupportedData, "binary frames are not supported")
			continue
		}
		if c.allowMessage(b) {
			c.dispatch(b)
		}
	}
}

func (c *Conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// finish runs once the reader has stopped: it records why the connection ended, leaves
// every channel and runs OnDisconnect.
func (c *Conn) finish(readErr error) {
	code, reason := closeStatus(readErr)
	c.mu.Lock()
	if c.beginCloseLocked(code, reason, true) {
		c.sendClose = false
	}
	code, reason = c.closeCode, c.closeReason
	c.mu.Unlock()
	_ = c.raw.Close() // wakes a writer blocked on the socket
	c.cancel()

	h := c.hub
	for _, name := range h.reg.remove(c, h.broker != nil) {
		h.syncInterest(name)
	}
	if c.userID != "" {
		h.syncInterest(brokerUserPrefix + c.userID)
	}
	h.stats.disconnects.Add(1)
	h.log.LogAttrs(context.Background(), slog.LevelInfo, "websocket_disconnected",
		slog.String("conn_id", c.id), slog.String("user_id", c.userID),
		slog.Int("code", int(code)), slog.String("reason", reason),
		slog.Duration("duration", time.Since(c.connectedAt)))
	if fn := h.opts.OnDisconnect; fn != nil {
		h.safely(c, "OnDisconnect", func() error { fn(c, code, reason); return nil })
	}
}

// closeStatus describes a read error as a close code and reason.
func closeStatus(err error) (websocket.StatusCode, string) {
	var ce websocket.CloseError
	switch {
	case errors.As(err, &ce):
		return ce.Code, ce.Reason
	case errors.Is(err, websocket.ErrMessageTooBig):
		return websocket.StatusMessageTooBig, "message too big"
	default:
		return websocket.StatusAbnormalClosure, "connection lost"
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
