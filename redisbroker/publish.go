package redisbroker

import (
	"context"
	"errors"
	"fmt"

	"github.com/wspub/wspub/internal/leavecall"
)

// ErrStalled is returned by Publish, at once, while Options.MaxPendingPublishes earlier
// Publishes have outlived their callers' contexts without an answer from Redis: Redis is
// not answering, and a new command would only wait as long.
var ErrStalled = errors.New("redisbroker: publish: Redis has not answered the pending publishes")

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
	// The caller's ctx goes with the command: go-redis neither retries nor waits for a
	// pooled connection once it has ended, and heeds its deadline in every read and write
	// when the client has ContextTimeoutEnabled.
	err := b.publishes.Run(ctx, b.ctx.Done(), func() error {
		return b.client.Publish(ctx, b.opts.Prefix+channel, payload).Err()
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, leavecall.ErrStalled):
		return fmt.Errorf("%w (%d)", ErrStalled, b.publishes.Cap())
	case errors.Is(err, leavecall.ErrClosed):
		return ErrClosed
	}
	return fmt.Errorf("redisbroker: publish: %w", err)
}
