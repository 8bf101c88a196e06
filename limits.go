package wspub

import (
	"log/slog"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"
)

// initLimits gives a new connection its message rate limiter (Options.MessageRate), its
// budget of rate_limited replies (Options.MaxRateLimited, refilled at one per second)
// and its frame budget (Options.MaxFrameRate, see framelimit.go).
func (c *Conn) initLimits() {
	o := &c.hub.opts
	if o.MaxFrameRate > 0 {
		c.frames = rate.NewLimiter(rate.Limit(o.MaxFrameRate), o.MaxFrameBurst)
	}
	if o.MessageRate < 0 {
		return
	}
	c.rate = rate.NewLimiter(rate.Limit(o.MessageRate), o.MessageBurst)
	c.strikes = rate.NewLimiter(1, o.MaxRateLimited)
}

// allowMessage reports whether the client may send frame now. A message over the rate
// gets a rate_limited reply (with its id, when it has one); a client that keeps going
// once its budget of such replies is spent is closed with 1008.
func (c *Conn) allowMessage(frame []byte) bool {
	if c.rate == nil || c.rate.Allow() {
		return true
	}
	h := c.hub
	h.stats.rateLimited.Add(1)
	if !c.strikes.Allow() {
		c.policyClose("rate limit exceeded")
		return false
	}
	m, _ := decodeClientMessage(frame, h.lim) // only for the id the reply echoes
	_ = c.enqueue(encodeError(&Error{Code: CodeRateLimited, Message: "too many messages; slow down"}, "", m.ID))
	return false
}

// countInvalid records a client protocol error; MaxInvalidMessages in a row close the
// connection with 1008. Only the reader calls it, so the count needs no lock.
func (c *Conn) countInvalid() {
	c.invalidRun++
	if limit := c.hub.opts.MaxInvalidMessages; limit > 0 && c.invalidRun >= limit {
		c.policyClose("too many invalid messages")
	}
}

// policyClose closes a misbehaving client with 1008 (policy violation) and logs it.
func (c *Conn) policyClose(reason string) {
	c.hub.stats.policyCloses.Add(1)
	c.hub.log.LogAttrs(c.ctx, slog.LevelWarn, "websocket_policy_violation",
		slog.String("conn_id", c.id), slog.String("user_id", c.userID), slog.String("reason", reason))
	c.closeWith(websocket.StatusPolicyViolation, reason)
}
