package natsbroker

import (
	"context"
	"errors"
	"fmt"

	"github.com/wspub/wspub/internal/leavecall"
)

// call runs fn (a call of nats.go) on a goroutine of its own and returns its result, or
// an error wrapping ctx.Err() when ctx ends first; fn then goes on until nats.go
// returns. At most Options.MaxPendingPublishes calls are under way at once.
func (b *Broker) call(ctx context.Context, fn func() error) error {
	err := b.calls.Run(ctx, b.done, fn)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, leavecall.ErrStalled):
		return fmt.Errorf("%w (%d)", ErrStalled, b.calls.Cap())
	case errors.Is(err, leavecall.ErrClosed):
		return ErrClosed
	case errors.Is(err, leavecall.ErrFull), errors.Is(err, leavecall.ErrLeft):
		return fmt.Errorf("natsbroker: publish: the connection does not take it: %w", err)
	}
	return err
}
