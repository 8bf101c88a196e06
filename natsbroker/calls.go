package natsbroker

import (
	"context"
	"fmt"
	"sync/atomic"
)

// pendingCall is one call of nats.go run by a goroutine of its own, so that its caller
// can leave when its context ends, whatever nats.go waits for.
type pendingCall struct {
	state atomic.Int32 // callRunning, then callFinished or callAbandoned
	done  chan error   // the call's result; buffered
}

const (
	callRunning int32 = iota
	callFinished
	callAbandoned // the caller left before the result
)

// call runs fn in a goroutine of its own and returns its result, or an error wrapping
// ctx.Err() when ctx ends first; fn then goes on until nats.go returns. At most
// Options.MaxPendingPublishes calls are under way at once.
func (b *Broker) call(ctx context.Context, fn func() error) error {
	if b.abandoned.Load() >= int64(cap(b.pending)) {
		return fmt.Errorf("%w (%d)", ErrStalled, cap(b.pending))
	}
	select {
	case b.pending <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("natsbroker: publish: all %d pending publishes still wait for the connection: %w",
			cap(b.pending), ctx.Err())
	case <-b.done:
		return ErrClosed
	}
	p := &pendingCall{done: make(chan error, 1)}
	go b.runCall(p, fn)
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		if p.state.CompareAndSwap(callRunning, callAbandoned) {
			b.abandoned.Add(1)
			return fmt.Errorf("natsbroker: publish: the connection does not take it: %w", ctx.Err())
		}
		return <-p.done // finished meanwhile
	}
}

func (b *Broker) runCall(p *pendingCall, fn func() error) {
	p.done <- fn()
	if !p.state.CompareAndSwap(callRunning, callFinished) {
		b.abandoned.Add(-1)
	}
	<-b.pending // last: abandoned never exceeds the calls counted in pending
}
