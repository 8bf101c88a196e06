package natsbroker

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// Subscription changes.
//
// Subscribe and Unsubscribe record the change (want, dirty) and wait for its
// confirmation, or for their context to end; they never call nats.go, whose every call
// may wait, for up to FlusherTimeout, for a write to a server that reads nothing. The
// control goroutine carries out every recorded change: it subscribes or unsubscribes as
// want says, then flushes, and the server's answer confirms the changes it carried out.
// Changes recorded while it waits go out together next. An error means "not confirmed
// yet": the change stays recorded, and control carries it out (again, for a subscribe
// that nats.go refused) when woken, every checkInterval and when the connection is back.

// waiter is a subscription change waiting for its confirmation.
type waiter struct {
	kind    string     // "subscribe" or "unsubscribe"
	channel string     // channel name
	batch   uint64     // of the control pass that carries it out; 0 until then
	settled bool       // done has the result, or the caller has left
	done    chan error // buffered: the result
}

// errOvertaken completes a change that a later opposite change of the same channel
// replaced before control carried it out. A hub never asks for that: it serialises the
// changes of a channel.
var errOvertaken = errors.New("natsbroker: overtaken by a later change of the channel")

// change records a subscribe (subject set) or an unsubscribe of channel, has control
// carry it out, and waits for its confirmation or the end of ctx.
func (b *Broker) change(ctx context.Context, kind, channel, subject string) error {
	ctx, cancel := b.bounded(ctx)
	defer cancel()
	w, err := b.record(kind, channel, subject)
	if w == nil {
		return err
	}
	b.wakeControl()
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
	case <-b.done:
		b.unregister(w)
		return ErrClosed
	}
	b.unregister(w)
	select {
	case err := <-w.done: // settled just before
		return err
	default:
	}
	return fmt.Errorf("natsbroker: %s %q not confirmed yet: %w", kind, channel, ctx.Err())
}

// record records a change and registers a waiter for its confirmation. Before Start it
// records the change, for control to carry out once started, and fails; after Close it
// fails (an unsubscribe succeeds: nothing is subscribed any more).
func (b *Broker) record(kind, channel, subject string) (*waiter, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		if kind == "unsubscribe" {
			return nil, nil
		}
		return nil, ErrClosed
	}
	if kind == "subscribe" {
		b.want[channel] = subject
	} else {
		delete(b.want, channel)
	}
	b.dirty[channel] = struct{}{}
	if !b.started {
		return nil, errors.New("natsbroker: not started")
	}
	w := &waiter{kind: kind, channel: channel, done: make(chan error, 1)}
	b.waiters[channel] = append(b.waiters[channel], w)
	return w, nil
}

func (b *Broker) wakeControl() {
	select {
	case b.wake <- struct{}{}:
	default: // already woken: it reads dirty afterwards
	}
}

// applyChanges carries out the recorded changes of the dirty channels, then confirms
// the waiting ones: with the server's answer to a flush while connected; while not,
// a subscribe fails with ErrDown (nats.go sends it when it reconnects) and an
// unsubscribe succeeds. Run by control only.
func (b *Broker) applyChanges() {
	type op struct {
		channel, subject string             // subscribe to subject
		sub              *nats.Subscription // or end sub
	}
	b.mu.Lock()
	if len(b.dirty) == 0 {
		b.mu.Unlock()
		return
	}
	b.batch++
	var ops []op
	var carried, overtaken []*waiter
	for c := range b.dirty {
		subject, want := b.want[c]
		sub, have := b.subs[c]
		kind := "unsubscribe"
		switch {
		case want:
			kind = "subscribe"
			if !have {
				ops = append(ops, op{channel: c, subject: subject})
			}
		case have:
			delete(b.subs, c)
			b.countDropsLocked(sub)
			ops = append(ops, op{channel: c, sub: sub})
		}
		for _, w := range b.waiters[c] {
			switch {
			case w.batch != 0: // carried out before: its own pass confirms it
			case w.kind == kind:
				w.batch = b.batch
				carried = append(carried, w)
			default:
				overtaken = append(overtaken, w)
			}
		}
	}
	clear(b.dirty)
	for _, w := range overtaken {
		b.settleLocked(w, errOvertaken)
	}
	b.mu.Unlock()

	failed := make(map[string]error)
	for _, o := range ops {
		if o.sub != nil {
			if err := unsubscribe(o.sub); err != nil {
				failed[o.channel] = err
			}
			continue
		}
		// Every subscription delivers into b.msgs (see Broker.msgs). nats.go never closes
		// the channel of a ChanSubscribe, neither on Unsubscribe nor on Close.
		sub, err := b.nc.ChanSubscribe(o.subject, b.msgs)
		b.mu.Lock()
		if err != nil {
			failed[o.channel] = err
			if !errors.Is(err, nats.ErrConnectionClosed) { // closed for good: nothing to retry
				b.dirty[o.channel] = struct{}{}
			}
		} else {
			b.subs[o.channel] = sub
		}
		b.mu.Unlock()
	}
	if len(carried) == 0 {
		return
	}
	connected := b.nc.IsConnected()
	var flushErr, downErr error
	if connected {
		ctx, cancel := context.WithTimeout(context.Background(), b.opts.Timeout)
		flushErr = b.flush(ctx)
		cancel()
	} else {
		downErr = fmt.Errorf("%w (the subscription is sent when it reconnects)", b.downError())
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, w := range carried {
		switch err := failed[w.channel]; {
		case err != nil:
			b.settleLocked(w, err)
		case connected:
			b.settleLocked(w, flushErr)
		case w.kind == "subscribe":
			b.settleLocked(w, downErr)
		default:
			b.settleLocked(w, nil)
		}
	}
}

// settleLocked gives w its result, unless it has one or its caller has left, and
// unregisters it.
func (b *Broker) settleLocked(w *waiter, err error) {
	if w.settled {
		return
	}
	w.settled = true
	w.done <- err
	b.unregisterLocked(w)
}

// unregister forgets w, whose caller leaves: a result that comes later is dropped.
func (b *Broker) unregister(w *waiter) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !w.settled {
		w.settled = true
		b.unregisterLocked(w)
	}
}

func (b *Broker) unregisterLocked(w *waiter) {
	ws := b.waiters[w.channel]
	for i, o := range ws {
		if o == w {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(b.waiters, w.channel)
	} else {
		b.waiters[w.channel] = ws
	}
}
