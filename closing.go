package wspub

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// A connection's life is one state machine, owned by this file; every transition holds
// c.mu.
//
//	open ──close──▶ closing ──queue flushed, close handshake done or timed out──▶ closed
//	  │                │                                                            ▲
//	  └─────abort──────┴──── peer gone, write failed, reaped, Hub.Close, ... ───────┘
//
// open: messages are queued and written.
//
// closing: nothing more is queued. The connection's context is cancelled, so handlers
// stop. The writer sends what is queued, then runs the close handshake; CloseTimeout
// bounds the two together (every write's deadline is at the latest the close deadline,
// and a timer closes the socket when it passes).
//
// closed: the socket and the *websocket.Conn are closed (which releases everything
// coder/websocket holds, its finalizer included), the queue is discarded, and cleanup
// runs exactly once: the connection leaves its channels and indexes, and OnDisconnect
// runs. Cleanup may block (broker calls, OnDisconnect), so it runs on the connection's
// reader when the reader sees the socket close, which it does at once unless it is
// running application code (a Handler, OnConnect, Authorize) at that moment; then
// whoever closed the connection runs cleanup on a goroutine of its own, so that a
// handler that ignores its context does not keep a dead connection registered.
type connState uint8

const (
	stateOpen connState = iota
	stateClosing
	stateClosed
)

// maxCloseReason is the longest close reason a close frame can carry (125 bytes of
// control payload less the 2-byte code).
const maxCloseReason = 123

// beginCloseLocked moves an open connection to closing: it records why the connection
// ends, starts the close deadline and cancels the connection's context. It reports
// false, and changes nothing, if the connection was not open. c.mu must be held.
func (c *Conn) beginCloseLocked(code websocket.StatusCode, reason string) bool {
	if c.state != stateOpen {
		return false
	}
	c.state = stateClosing
	c.closeCode, c.closeReason = code, closeReason(reason)
	// From now on every write, and so the whole close, is bounded by CloseTimeout: a peer
	// that stopped reading must not hold the connection for WriteTimeout per frame.
	deadline := time.Now().Add(c.hub.opts.CloseTimeout)
	c.closeBy.Store(deadline.UnixNano())
	if c.raw != nil {
		_ = c.raw.SetWriteDeadline(deadline)
	}
	c.cancel()
	return true
}

// closeWith closes the connection gracefully: what is queued is sent, then the close
// handshake runs. It does nothing if the connection is already closing.
func (c *Conn) closeWith(code websocket.StatusCode, reason string) {
	c.mu.Lock()
	if c.beginCloseLocked(code, reason) {
		c.handshake = true
		c.startWriterLocked()
	}
	c.mu.Unlock()
}

// evictLocked closes a slow consumer: its queue is discarded and the close handshake
// (1013) runs at once. It reports false if the connection was not open. c.mu must be
// held.
func (c *Conn) evictLocked() bool {
	if !c.beginCloseLocked(StatusSlowConsumer, "slow consumer") {
		return false
	}
	c.discardLocked()
	c.handshake = true
	c.startWriterLocked()
	return true
}

// abort closes the connection at once, with no handshake: for peers that are gone or
// cannot take another byte, and for Hub.Close. code and reason are what OnDisconnect and
// the logs see, if the connection was still open; it reports whether it was. If the
// reader is busy in application code, cleanup runs on a goroutine of its own, so that
// the caller (the heartbeat, Close) never waits for OnDisconnect. abort must not be
// called from inside coder/websocket (a read callback), whose locks closing the
// *websocket.Conn waits for.
func (c *Conn) abort(code websocket.StatusCode, reason string) (wasOpen bool) {
	c.mu.Lock()
	wasOpen = c.beginCloseLocked(code, reason)
	first, cleanup := c.closeLocked()
	c.mu.Unlock()
	if first {
		c.closeSocket()
	}
	if cleanup {
		go func() {
			defer c.hub.wg.Done() // added by closeLocked
			c.cleanup()
		}()
	}
	return wasOpen
}

// closeLocked moves a closing connection (beginCloseLocked has recorded why it ends) to
// closed and discards its queue. first reports
// whether this call did it (and must close the socket); cleanup, whether the caller
// must run cleanup because the reader is busy in application code and will not notice
// the closed socket. Then closeLocked has added one to the hub's WaitGroup for that
// cleanup, which the caller calls Done on when it is over: added here, under c.mu, the
// busy reader's own count still holds the group above zero (once c.mu is released the
// reader may finish and exit, and an Add from zero would race with Wait). c.mu must be
// held.
func (c *Conn) closeLocked() (first, cleanup bool) {
	if c.state == stateClosed {
		return false, false
	}
	c.state = stateClosed // the writer looks at nothing else once it is closed
	c.discardLocked()
	if c.busy && !c.cleaned {
		c.cleaned = true
		c.hub.wg.Add(1)
		return true, true
	}
	return true, false
}

// closeSocket closes the TCP connection, which ends at once whatever the reader and
// the writer are doing with it (a close handshake included), then the
// *websocket.Conn, which releases what coder/websocket holds (its finalizer keeps it
// reachable until it is closed). CloseNow waits for the reader to leave
// coder/websocket's Read, which the closed socket makes it do at once.
func (c *Conn) closeSocket() {
	if c.raw != nil {
		_ = c.raw.Close()
	}
	if c.ws != nil {
		_ = c.ws.CloseNow()
	}
}

// closeHandshake sends a close frame and waits for the peer's, until the close deadline;
// then the socket is closed.
func (c *Conn) closeHandshake(code websocket.StatusCode, reason string) {
	if c.ws == nil { // a benchmark's connection without a socket
		return
	}
	force := time.AfterFunc(time.Until(time.Unix(0, c.closeBy.Load())), func() { _ = c.raw.Close() })
	defer force.Stop()
	_ = c.ws.Close(code, reason)
}

// finishHandshake runs on the writer once the close handshake is over: the connection
// is closed, and if the reader is busy in application code, the writer cleans up.
func (c *Conn) finishHandshake() {
	c.mu.Lock()
	first, cleanup := c.closeLocked()
	c.writing = false
	c.mu.Unlock()
	if first {
		c.closeSocket()
	}
	if cleanup {
		c.cleanup()
		c.hub.wg.Done() // added by closeLocked
	}
}

// finish runs on the reader once it has stopped reading: the connection is closed (the
// peer ended it, if it was open) and cleaned up unless that happened already.
func (c *Conn) finish(readErr error) {
	code, reason := closeStatus(readErr)
	c.mu.Lock()
	c.beginCloseLocked(code, reason)
	first, _ := c.closeLocked() // the reader is not busy: no cleanup is handed over
	cleanup := !c.cleaned
	c.cleaned = true
	c.mu.Unlock()
	if first {
		c.closeSocket()
	}
	if cleanup {
		c.cleanup()
	}
}

// beginDispatch marks the reader busy with a client message or a hook, unless the
// connection is closing or closed (then the message is dropped: the reader drains until
// the peer answers the close). endDispatch clears the mark.
func (c *Conn) beginDispatch() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateOpen {
		return false
	}
	c.busy = true
	return true
}

func (c *Conn) endDispatch() {
	c.mu.Lock()
	c.busy = false
	c.mu.Unlock()
}

// isClosing reports whether the connection has left the open state.
func (c *Conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state != stateOpen
}

// cleanup takes a closed connection out of every channel and index, counts and logs
// its end and runs OnDisconnect. It runs once per connection.
func (c *Conn) cleanup() {
	h := c.hub
	c.mu.Lock()
	code, reason := c.closeCode, c.closeReason
	c.mu.Unlock()
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

// discardLocked empties the queue, counting its messages as dropped. c.mu must be held.
func (c *Conn) discardLocked() {
	if n := c.q.reset(&c.hub.segments); n > 0 {
		c.hub.stats.dropped.Add(uint64(n))
	}
}

// closeStatus describes a read error as a close code and reason. A close reason that is
// not UTF-8 is a protocol error of the peer's (RFC 6455 section 8.1): 1007.
func closeStatus(err error) (websocket.StatusCode, string) {
	var ce websocket.CloseError
	switch {
	case errors.As(err, &ce):
		if !utf8.ValidString(ce.Reason) {
			return websocket.StatusInvalidFramePayloadData, invalidCloseReason
		}
		return ce.Code, ce.Reason
	case errors.Is(err, websocket.ErrMessageTooBig):
		return websocket.StatusMessageTooBig, "message too big"
	default:
		return websocket.StatusAbnormalClosure, "connection lost"
	}
}

// invalidCloseReason is the reason of the 1007 close that answers a close frame whose
// reason is not UTF-8.
const invalidCloseReason = "invalid UTF-8 in close reason"

// closeReason makes reason fit a close frame: valid UTF-8 of at most maxCloseReason
// bytes, cut at a character boundary.
func closeReason(reason string) string {
	return cutUTF8(strings.ToValidUTF8(reason, "\uFFFD"), maxCloseReason)
}
