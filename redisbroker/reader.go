package redisbroker

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// run is the reader: the only goroutine that receives from the subscription connection
// (go-redis's receiving is not safe for concurrent use). It delivers messages, confirms
// subscription changes, checks the connection's health and paces the reconnections,
// until Close.
//
// It does not use PubSub.Channel, whose goroutine drops messages when the Go channel
// stays full and cannot be stopped by itself.
func (b *Broker) run(ps *redis.PubSub, deliver func(channel string, payload []byte)) {
	defer b.wg.Done()
	ctx := b.ctx
	backoff := b.opts.ReconnectMin
	var pingDue time.Time // when the health ping outstanding must have been answered; zero: none
	fail := func(err error) bool {
		pingDue = time.Time{}
		b.markDown(err)
		ok := b.pause(backoff - rand.N(backoff/2+1))
		backoff = min(2*backoff, b.opts.ReconnectMax)
		return ok
	}
	for ctx.Err() == nil {
		if pingDue.IsZero() && !b.Up() {
			// (Re)connect: the ping dials if need be, go-redis subscribes the new
			// connection to every recorded channel, and the pong marks it up.
			if err := b.healthPing(ctx, ps); err != nil {
				if ctx.Err() != nil || !fail(err) {
					return
				}
				continue
			}
			pingDue = time.Now().Add(b.opts.HealthCheckInterval)
		}
		if b.dirtyPending.Load() && b.Up() {
			b.wakeCommander() // changes that failed, or were asked for before Start
		}
		msg, err := b.receive(ctx, ps, pingDue)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if pingDue.IsZero() && isTimeout(err) {
				// Silent for a whole interval: ask Redis whether the connection lives.
				if err = b.healthPing(ctx, ps); err == nil {
					pingDue = time.Now().Add(b.opts.HealthCheckInterval)
					continue
				}
			}
			if !fail(err) {
				return
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Message:
			if name, ok := strings.CutPrefix(m.Channel, b.opts.Prefix); ok {
				deliver(name, []byte(m.Payload))
			}
		case *redis.Subscription:
			b.replied(m.Kind, m.Channel)
		case *redis.Pong:
			if !b.confirmed(m.Payload) { // a health ping's
				pingDue = time.Time{}
				if b.markUp() {
					backoff = b.opts.ReconnectMin
				}
			}
		}
	}
}

// receive returns the next message. Without a health ping outstanding, it waits up to
// HealthCheckInterval and a timeout leaves the connection as it is. With one, it waits
// until the pong is due, and go-redis treats a timeout as a broken connection: it closes
// it, and the next command dials a new one.
func (b *Broker) receive(ctx context.Context, ps *redis.PubSub, pingDue time.Time) (any, error) {
	if pingDue.IsZero() {
		return ps.ReceiveTimeout(ctx, b.opts.HealthCheckInterval)
	}
	ctx, cancel := context.WithDeadline(ctx, pingDue)
	defer cancel()
	return ps.Receive(ctx)
}

// healthPing sends a ping without payload through the subscription connection, dialling
// it first if there is none.
func (b *Broker) healthPing(ctx context.Context, ps *redis.PubSub) error {
	ctx, cancel := context.WithTimeout(ctx, b.opts.HealthCheckInterval)
	defer cancel()
	return ps.Ping(ctx)
}

// markUp records that the connection answers, and reports whether it was not up before.
func (b *Broker) markUp() bool {
	if b.state.Load() == stateUp {
		return false
	}
	b.state.Store(stateUp)
	b.log.LogAttrs(b.ctx, slog.LevelInfo, "redis_broker_up",
		slog.Int("channels", b.channels()), slog.Uint64("outages", b.outages.Load()))
	return true
}

// markDown records that the connection failed; an up connection counts as an outage.
func (b *Broker) markDown(err error) {
	switch b.state.Load() {
	case stateDown:
		return
	case stateUp:
		b.outages.Add(1)
	}
	b.state.Store(stateDown)
	b.log.LogAttrs(b.ctx, slog.LevelWarn, "redis_broker_down",
		slog.String("error", err.Error()), slog.Uint64("outages", b.outages.Load()))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// pause waits for d before the next reconnection attempt, or less if a subscription
// command has gone through meanwhile; it reports false if the Broker was closed.
func (b *Broker) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-b.kick:
		return true
	case <-b.ctx.Done():
		return false
	}
}
