package wspub

import (
	"context"
	"log/slog"
	"time"

	"github.com/coder/websocket"
)

// heartbeat is the hub's one timer goroutine. Every PingInterval it pings every
// connection; PongTimeout later it reaps those whose pong has not arrived, and closes
// those whose identity has expired. Pongs are stamped by the reader (AcceptOptions.
// OnPongReceived), so no goroutine per connection waits on a timer.
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
		conns := h.reg.allConns()
		for _, c := range conns {
			c.ping()
		}
		if !wait(h.opts.PongTimeout) {
			return
		}
		now := time.Now()
		for _, c := range conns {
			switch {
			case c.lastPong.Load() < start.UnixNano():
				c.reap()
			case !c.expires.IsZero() && now.After(c.expires):
				c.closeWith(websocket.StatusPolicyViolation, "identity expired")
			}
		}
		if !wait(h.opts.PingInterval - h.opts.PongTimeout) {
			return
		}
	}
}

// ping sends a ping frame. coder/websocket's Ping waits for its pong, so a short-lived
// goroutine waits with it, for one round trip on a healthy connection and at most
// PongTimeout on a dead one. The verdict is the heartbeat's, from the pong stamps.
func (c *Conn) ping() {
	if c.ws == nil || c.isClosing() {
		return
	}
	h := c.hub
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), h.opts.PongTimeout)
		defer cancel()
		_ = c.ws.Ping(ctx)
	}()
}

// reap closes a connection that did not answer a ping in time.
func (c *Conn) reap() {
	if c.isClosing() {
		return
	}
	h := c.hub
	h.stats.reaped.Add(1)
	h.log.LogAttrs(context.Background(), slog.LevelWarn, "websocket_reaped",
		slog.String("conn_id", c.id), slog.String("user_id", c.userID),
		slog.Duration("pong_timeout", h.opts.PongTimeout))
	c.abort(websocket.StatusAbnormalClosure, "pong timeout")
}
