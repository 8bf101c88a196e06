package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Subscription changes.
//
// Subscribe and Unsubscribe record the change (want, dirty) and wait for its
// confirmation, or for their context to end; they never call go-redis. One goroutine,
// the commander, sends the commands of every recorded change. go-redis's PubSub runs
// each command under a lock of its own, which the reader holds while it dials and greets
// a new connection: with a client without ContextTimeoutEnabled, that lasts up to the
// client's ReadTimeout whatever the context, and a caller waiting for the lock could
// not leave when its context ends. The commander waits instead, and changes recorded
// meanwhile go out together in its next batch.
//
// An error means "not confirmed yet", never "forgotten": the change stays recorded.
// go-redis's PubSub keeps the set of subscribed channels and subscribes to all of them
// again whenever it opens a new connection, updating the set even when the command
// fails. Two cases escape it, and leave the channel in dirty for the commander to send
// again once the connection is up: a change recorded while no command can be sent, and a
// SUBSCRIBE whose write fails while go-redis reconnects at once (it subscribes the new
// connection to the set as it was before adding the channel).

// waiter is a subscription change waiting for its confirmation: the reply to its
// command for its channel, then the pong of the ping sent after the command. The pong
// is the barrier: Redis answers the commands of a connection in order, so when the pong
// comes the command has taken effect, and a late reply to an older command for the same
// channel cannot pass for the confirmation.
type waiter struct {
	kind    string     // "subscribe" or "unsubscribe", as Redis names its reply
	channel string     // Redis channel
	token   string     // payload of the ping sent after its command; "" until sent
	replied bool       // the reader has seen a reply of kind for channel since the waiter was registered
	settled bool       // done has the result, or the caller has left
	done    chan error // buffered: the result
}

// errOvertaken completes a change that a later opposite change of the same channel
// replaced before its command was sent. A hub never asks for that: it serialises the
// changes of a channel.
var errOvertaken = errors.New("overtaken by a later change of the channel")

// change records a subscribe or unsubscribe, has the commander send it, and waits for
// its confirmation or the end of ctx.
func (b *Broker) change(ctx context.Context, kind, channel string) error {
	w, err := b.record(kind, b.opts.Prefix+channel)
	if err != nil {
		return err
	}
	b.wakeCommander()
	select {
	case err := <-w.done:
		return changeResult(kind, channel, err)
	case <-ctx.Done():
	case <-b.ctx.Done():
		b.unregister(w)
		return ErrClosed
	}
	b.unregister(w)
	select {
	case err := <-w.done: // settled just before
		return changeResult(kind, channel, err)
	default:
	}
	return fmt.Errorf("redisbroker: %s %q not confirmed yet: %w", kind, channel, ctx.Err())
}

func changeResult(kind, channel string, err error) error {
	if err != nil {
		return fmt.Errorf("redisbroker: %s %q: %w", kind, channel, err)
	}
	return nil
}

// record records a change of the Redis channel channel and registers a waiter for its
// confirmation. Before Start it records the change, for the commander to send once
// started, and fails.
func (b *Broker) record(kind, channel string) (*waiter, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	if kind == "subscribe" {
		b.want[channel] = struct{}{}
	} else {
		delete(b.want, channel)
	}
	b.markDirtyLocked(channel)
	if b.ps == nil {
		return nil, errors.New("redisbroker: not started")
	}
	w := &waiter{kind: kind, channel: channel, done: make(chan error, 1)}
	b.byChannel[channel] = append(b.byChannel[channel], w)
	return w, nil
}

func (b *Broker) markDirtyLocked(channel string) {
	b.dirty[channel] = struct{}{}
	b.dirtyPending.Store(true)
}

func (b *Broker) wakeCommander() {
	select {
	case b.wake <- struct{}{}:
	default: // already woken: it reads dirty afterwards
	}
}

// command is the commander: it sends the recorded changes whenever woken, until Close.
func (b *Broker) command(ps *redis.PubSub) {
	defer b.wg.Done()
	for {
		select {
		case <-b.wake:
		case <-b.ctx.Done():
			return
		}
		if b.lockCmd(b.ctx) != nil {
			return
		}
		b.sendChanges(ps)
		b.unlockCmd()
	}
}

// sendChanges sends UNSUBSCRIBE and SUBSCRIBE, as want says, for the dirty channels,
// then a ping whose pong confirms the waiting changes among them. Subscribing to a
// channel twice, or unsubscribing from one not subscribed, is harmless. A failed command
// fails the waiters at once, with its error, and leaves the channels to subscribe dirty;
// the reader wakes the commander again once the connection is up.
func (b *Broker) sendChanges(ps *redis.PubSub) {
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.HealthCheckInterval)
	defer cancel()
	b.mu.Lock()
	if len(b.dirty) == 0 {
		b.mu.Unlock()
		return
	}
	b.seq++
	token := tokenPrefix + strconv.FormatUint(b.seq, 10)
	var subs, unsubs []string
	var sent, overtaken []*waiter
	for c := range b.dirty {
		kind := "unsubscribe"
		if _, ok := b.want[c]; ok {
			kind = "subscribe"
			subs = append(subs, c)
		} else {
			unsubs = append(unsubs, c)
		}
		for _, w := range b.byChannel[c] {
			switch {
			case w.token != "": // sent before: its own pong confirms it
			case w.kind == kind:
				w.token = token
				sent = append(sent, w)
			default:
				overtaken = append(overtaken, w)
			}
		}
	}
	clear(b.dirty)
	b.dirtyPending.Store(false)
	for _, w := range overtaken {
		b.settleLocked(w, errOvertaken)
	}
	if len(sent) > 0 {
		b.byToken[token] = sent
	}
	b.mu.Unlock()

	var err error
	if len(unsubs) > 0 { // never without channels: that would unsubscribe from all
		err = ps.Unsubscribe(ctx, unsubs...) // a failure reconnects without them
	}
	if err == nil && len(subs) > 0 {
		err = ps.Subscribe(ctx, subs...)
	}
	if err == nil {
		err = ps.Ping(ctx, token)
	}
	if err != nil {
		b.mu.Lock()
		for _, c := range subs {
			if _, ok := b.want[c]; ok {
				b.markDirtyLocked(c)
			}
		}
		delete(b.byToken, token)
		for _, w := range sent {
			b.settleLocked(w, err)
		}
		b.mu.Unlock()
		return
	}
	if !b.Up() { // the connection is back: no need for the reader to wait longer
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
}

// lockCmd takes cmdSem, unless ctx ends first.
func (b *Broker) lockCmd(ctx context.Context) error {
	select {
	case b.cmdSem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *Broker) unlockCmd() { <-b.cmdSem }

// tokenPrefix starts the payload of the pings that confirm subscription changes; the
// health check's pings have none.
const tokenPrefix = "wspub-confirm-"

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
	removeWaiter(b.byChannel, w.channel, w)
	if w.token != "" { // a pong that never comes (the connection was lost) leaves nothing behind
		removeWaiter(b.byToken, w.token, w)
	}
}

func removeWaiter(m map[string][]*waiter, key string, w *waiter) {
	ws := m[key]
	for i, o := range ws {
		if o == w {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(m, key)
	} else {
		m[key] = ws
	}
}

// replied notes a subscribe or unsubscribe reply for channel.
func (b *Broker) replied(kind, channel string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, w := range b.byChannel[channel] {
		if w.kind == kind {
			w.replied = true
		}
	}
}

// confirmed completes the waiters whose ping token is payload, those that still wait,
// and reports whether payload is a token at all (rather than a health check's).
func (b *Broker) confirmed(payload string) bool {
	if !strings.HasPrefix(payload, tokenPrefix) {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	ws := b.byToken[payload]
	delete(b.byToken, payload)
	for _, w := range ws {
		if w.replied {
			b.settleLocked(w, nil)
		} else { // cannot happen while Redis answers in order; fail rather than claim success
			b.settleLocked(w, errors.New("redis answered the ping but not the command"))
		}
	}
	return true
}
