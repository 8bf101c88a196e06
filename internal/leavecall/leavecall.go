// Package leavecall runs the blocking calls of a broker client (go-redis, nats.go) on
// goroutines their callers may leave: a caller returns when its context ends, whatever
// the client waits for, and the calls under way stay bounded, so that a broker that
// stops answering costs each caller its timeout and the process a fixed number of
// goroutines. The broker adapters use it to keep Publish within Options.BrokerTimeout
// with any client settings. It imports only the standard library.
package leavecall

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
)

// Errors of Group.Run other than the call's own.
var (
	// ErrStalled: as many calls as the group holds have been left unanswered, so a new
	// one would only wait as long. Run returns it at once.
	ErrStalled = errors.New("every pending call was left unanswered")
	// ErrFull: the context ended while every slot was taken by calls still under way.
	ErrFull = errors.New("every pending call is still under way")
	// ErrLeft: the context ended before the call returned; the call goes on.
	ErrLeft = errors.New("no answer")
	// ErrClosed: the group's owner closed while the caller waited for a slot.
	ErrClosed = errors.New("closed")
)

// Group bounds the calls under way. The zero value is not usable; call New.
type Group struct {
	slots     chan struct{} // a token per call under way
	abandoned atomic.Int64  // calls under way whose caller has left
}

// New returns a Group of at most n calls under way at once.
func New(n int) *Group {
	return &Group{slots: make(chan struct{}, n)}
}

// Cap returns how many calls may be under way at once.
func (g *Group) Cap() int { return cap(g.slots) }

// call is one call under way.
type call struct {
	state atomic.Int32 // running, then finished or abandoned
	done  chan error   // the call's result; buffered
}

const (
	running int32 = iota
	finished
	abandoned // the caller left before the result
)

// Run runs fn on a goroutine of its own and returns its result, or an error wrapping
// ErrLeft and ctx.Err() when ctx ends first; fn then goes on until the client returns.
// It returns ErrStalled at once while every slot is held by a call its caller left, an
// error wrapping ErrFull and ctx.Err() when ctx ends while it waits for a slot, and
// ErrClosed when closed is closed while it waits.
func (g *Group) Run(ctx context.Context, closed <-chan struct{}, fn func() error) error {
	if g.abandoned.Load() >= int64(cap(g.slots)) {
		return ErrStalled
	}
	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%w (%d): %w", ErrFull, cap(g.slots), ctx.Err())
	case <-closed:
		return ErrClosed
	}
	c := &call{done: make(chan error, 1)}
	go g.run(c, fn)
	select {
	case err := <-c.done:
		return err
	case <-ctx.Done():
		if c.state.CompareAndSwap(running, abandoned) {
			g.abandoned.Add(1)
			return fmt.Errorf("%w: %w", ErrLeft, ctx.Err())
		}
		return <-c.done // finished meanwhile
	}
}

func (g *Group) run(c *call, fn func() error) {
	c.done <- fn()
	if !c.state.CompareAndSwap(running, finished) {
		g.abandoned.Add(-1)
	}
	<-g.slots // last: abandoned never exceeds the calls holding a slot
}
