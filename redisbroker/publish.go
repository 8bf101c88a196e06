package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
)

// ErrStalled is returned by Publish, at once, while Options.MaxPendingPublishes earlier
// Publishes have outlived their callers' contexts without an answer from Redis: Redis is
// not answering, and a new command would only wait as long.
var ErrStalled = errors.New("redisbroker: publish: Redis has not answered the pending publishes")

// pendingPublish is one PUBLISH command, run by a goroutine of its own so that its caller
// can leave when its context ends, whatever go-redis waits for.
type pendingPublish struct {
	state atomic.Int32 // publishRunning, then publishFinished or publishAbandoned
	done  chan error   // the command's result; buffered
}

const (
	publishRunning int32 = iota
	publishFinished
	publishAbandoned // the caller left before the result
)

// Publish publishes payload, unchanged, to the Redis channel of channel, through the
// client's connection pool. It returns when Redis has answered, when the command fails,
// or when ctx ends, whichever comes first, whatever the client's settings: the command
// runs in a goroutine of its own, which the caller leaves when ctx ends (see
// Options.MaxPendingPublishes for what such a command costs until go-redis gives it up).
// An error does not mean that the message was not published: Redis may still carry out a
// command it had received, when it answers again. See the package documentation on
// MaxRetries and DialerRetries.
func (b *Broker) Publish(ctx context.Context, channel string, payload []byte) error {
	if b.ctx.Err() != nil {
		return ErrClosed
	}
	if b.client == nil {
		return errors.New("redisbroker: New was given a nil client")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisbroker: publish: %w", err)
	}
	if b.abandoned.Load() >= int64(cap(b.pending)) {
		return fmt.Errorf("%w (%d)", ErrStalled, cap(b.pending))
	}
	select {
	case b.pending <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("redisbroker: publish: all %d pending publishes still wait for Redis: %w",
			cap(b.pending), ctx.Err())
	case <-b.ctx.Done():
		return ErrClosed
	}
	p := &pendingPublish{done: make(chan error, 1)}
	go b.runPublish(ctx, p, b.opts.Prefix+channel, payload)
	var err error
	select {
	case err = <-p.done:
	case <-ctx.Done():
		if p.state.CompareAndSwap(publishRunning, publishAbandoned) {
			b.abandoned.Add(1)
			return fmt.Errorf("redisbroker: publish: no answer from Redis: %w", ctx.Err())
		}
		err = <-p.done // finished meanwhile
	}
	if err != nil {
		return fmt.Errorf("redisbroker: publish: %w", err)
	}
	return nil
}

// runPublish carries out a Publish's command. It keeps ctx, the caller's: go-redis
// neither retries nor waits for a pooled connection once it has ended, and heeds its
// deadline in every read and write when the client has ContextTimeoutEnabled.
func (b *Broker) runPublish(ctx context.Context, p *pendingPublish, channel string, payload []byte) {
	p.done <- b.client.Publish(ctx, channel, payload).Err()
	if !p.state.CompareAndSwap(publishRunning, publishFinished) {
		b.abandoned.Add(-1)
	}
	<-b.pending // last: abandoned never exceeds the publishes counted in pending
}
