package wspub

import (
	"context"
	"encoding/binary"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/coder/websocket"
)

// pingTokenBytes is the size of a heartbeat ping's payload.
const pingTokenBytes = 8

// heartbeat is the hub's one timer goroutine. Every PingInterval it has every
// connection's writer send a ping whose payload is a random token of the round;
// PongTimeout later it reaps those that have not answered with a pong carrying that
// token, and closes those whose identity has expired. Pongs are stamped by the reader
// (onPong), so no goroutine waits on a timer or a pong: a round costs each connection a
// short-lived writer at most. A pong that answers no ping of the round (a client
// sending pongs of its own accord, which RFC 6455 allows) proves nothing and is ignored.
func (h *Hub) heartbeat() {
	defer h.wg.Done()
	t := time.NewTimer(h.opts.PingInterval)
	defer t.Stop()
	wait := func(d time.Duration) bool {
		t.Reset(d)
		select {
		case <-h.done:
			return false
		case <-t.C:
			return true
		}
	}
	if !wait(h.opts.PingInterval) {
		return
	}
	for {
		start := time.Now()
		h.pingToken.Store(rand.Uint64())
		for _, c := range h.reg.allConns() {
			c.ping()
		}
		if !wait(h.opts.PongTimeout) {
			return
		}
		// A fresh snapshot: holding the pinged one across the wait would keep the
		// connections that left meanwhile reachable for PongTimeout. One that joined
		// since start stamped lastPong when it connected, so it is not reaped.
		now := time.Now()
		for _, c := range h.reg.allConns() {
			switch {
			case c.lastPong.Load() < start.UnixNano():
				c.reap()
			case !c.expires.IsZero() && now.After(c.expires):
				c.closeWith(StatusIdentityExpired, "identity expired")
			}
		}
		if !wait(h.opts.PingInterval - h.opts.PongTimeout) {
			return
		}
	}
}

// ping has the writer send the round's ping.
func (c *Conn) ping() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ws == nil || c.state != stateOpen {
		return
	}
	c.pingDue = true
	c.startWriterLocked()
}

// onPong stamps a pong that carries the current round's token, for the heartbeat.
func (c *Conn) onPong(_ context.Context, payload []byte) {
	if len(payload) == pingTokenBytes && binary.BigEndian.Uint64(payload) == c.hub.pingToken.Load() {
		c.lastPong.Store(time.Now().UnixNano())
	}
}

// reap closes a connection that did not answer a ping in time.
func (c *Conn) reap() {
	if c.isClosing() {
		return
	}
	h := c.hub
	if !c.abort(websocket.StatusAbnormalClosure, "pong timeout") {
		return
	}
	h.stats.reaped.Add(1)
	h.log.LogAttrs(context.Background(), slog.LevelWarn, "websocket_reaped",
		slog.String("conn_id", c.id), slog.String("user_id", c.userID),
		slog.Duration("pong_timeout", h.opts.PongTimeout))
}
