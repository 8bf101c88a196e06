package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/wspub/wspub"
)

var (
	_ wspub.Broker       = (*Broker)(nil)
	_ wspub.BrokerHealth = (*Broker)(nil)
)

// ErrClosed is returned by the methods of a Broker after Close.
var ErrClosed = errors.New("redisbroker: broker closed")

// Options configures a Broker. A nil *Options means defaults; New copies the struct, so
// the caller's value is never changed.
type Options struct {
	// Prefix is put before every channel name to form its Redis channel. The hubs of one
	// application must share it; different prefixes keep applications (or test runs)
	// apart on one Redis server, whose pub/sub ignores database numbers. Default:
	// "wspub:".
	Prefix string

	// Logger receives redis_broker_down (Warn, with the error) when the subscription
	// connection is lost or cannot be established, and redis_broker_up (Info, with the
	// number of channels subscribed) when it is established again: once per transition.
	// Default: nil, no logs.
	Logger *slog.Logger

	// HealthCheckInterval is how long the subscription connection may stay silent before
	// the Broker pings Redis through it. A ping unanswered for another interval counts as
	// an outage, and the connection is replaced: an idle connection that died without a
	// word (a half-open TCP connection) is noticed within two intervals. A connection
	// that Redis or the network closes is noticed at once. Default: 2s.
	HealthCheckInterval time.Duration

	// ReconnectMin and ReconnectMax bound the wait between two attempts to re-establish
	// the subscription connection: it starts at ReconnectMin, doubles after each failed
	// attempt up to ReconnectMax, and each wait is shortened by a random part of up to a
	// half so that many nodes do not reconnect in step. A ReconnectMax below ReconnectMin
	// is raised to it. Defaults: 100ms and 5s.
	ReconnectMin time.Duration
	ReconnectMax time.Duration

	// MaxPendingPublishes bounds the PUBLISH commands under way at once. Each Publish
	// runs its command in a goroutine of its own, so that it returns when its context
	// ends (the hub's BrokerTimeout) even when go-redis waits longer: a client without
	// ContextTimeoutEnabled, as redis.NewClient makes by default, waits for each reply
	// up to its ReadTimeout (5s by default in go-redis v9.22), and as long again to set
	// up a new connection, whatever the context. A command that its caller has left
	// keeps its goroutine, its payload and its pooled connection until go-redis gives it
	// up or Redis answers; a Redis that answers again completes them at once.
	//
	// With MaxPendingPublishes commands under way, a Publish waits until one of them
	// ends, or until its context ends; when all of them have been left by their callers,
	// Publish fails at once with ErrStalled. So during an outage, however long and
	// however many Publishes are asked for, the Broker holds at most MaxPendingPublishes
	// goroutines, payloads and pooled connections (never more connections than the
	// client's PoolSize), and none once go-redis has given them up. While Redis answers
	// in time it only bounds how many PUBLISH commands a node runs at once, as the
	// client's PoolSize does too. Default: 64.
	MaxPendingPublishes int
}

// Defaults applied by New.
const (
	defaultPrefix              = "wspub:"
	defaultHealthCheckInterval = 2 * time.Second
	defaultReconnectMin        = 100 * time.Millisecond
	defaultReconnectMax        = 5 * time.Second
	defaultMaxPendingPublishes = 64
)

// withDefaults returns a copy of opts with every unset field at its default.
func (opts *Options) withDefaults() Options {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Prefix == "" {
		o.Prefix = defaultPrefix
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.HealthCheckInterval <= 0 {
		o.HealthCheckInterval = defaultHealthCheckInterval
	}
	if o.ReconnectMin <= 0 {
		o.ReconnectMin = defaultReconnectMin
	}
	if o.ReconnectMax <= 0 {
		o.ReconnectMax = defaultReconnectMax
	}
	if o.ReconnectMax < o.ReconnectMin {
		o.ReconnectMax = o.ReconnectMin
	}
	if o.MaxPendingPublishes <= 0 {
		o.MaxPendingPublishes = defaultMaxPendingPublishes
	}
	return o
}

// Broker is a wspub.Broker over Redis pub/sub; it also implements wspub.BrokerHealth.
// Create one per hub with New and pass it as wspub.Options.Broker: the hub starts and
// closes it. Its methods are safe for concurrent use.
type Broker struct {
	client redis.UniversalClient
	opts   Options
	log    *slog.Logger

	ctx    context.Context // cancelled by Close: stops the reader and every wait
	cancel context.CancelFunc
	wg     sync.WaitGroup // the reader
	close  sync.Once
	errs   error // of Close

	state   atomic.Int32 // stateConnecting, stateUp or stateDown; written by the reader only
	outages atomic.Uint64

	// pending holds a token per PUBLISH command under way (Options.MaxPendingPublishes),
	// abandoned counts those whose caller has left.
	pending   chan struct{}
	abandoned atomic.Int64

	// cmdSem (a mutex that a context can give up on) serialises the subscription
	// commands with the changes of want they carry out, so that a channel the reader
	// subscribes to again cannot race its unsubscribe.
	cmdSem chan struct{}

	// kick cuts the reader's wait before a reconnection short: a command went through,
	// so the connection is back.
	kick chan struct{}

	mu        sync.Mutex
	ps        *redis.PubSub // nil until Start
	closed    bool
	want      map[string]struct{}  // Redis channels recorded as subscribed
	dirty     map[string]struct{}  // channels whose state at Redis may differ from want: the reader reconciles them
	byToken   map[string]*waiter   // changes waiting for confirmation, by ping token
	byChannel map[string][]*waiter // the same, by Redis channel
	seq       uint64               // of ping tokens

	dirtyPending atomic.Bool // dirty is not empty: saves the reader a lock per message
}

const (
	stateConnecting int32 = iota // not connected yet, never up
	stateUp
	stateDown
)

// New returns a Broker that publishes and subscribes through client. The Broker opens
// one dedicated subscription connection (client.Subscribe) in Start and closes it in
// Close; it never closes client, which may serve the application too. A nil opts means
// defaults.
func New(client redis.UniversalClient, opts *Options) *Broker {
	o := opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Broker{
		client:    client,
		opts:      o,
		log:       o.Logger,
		ctx:       ctx,
		cancel:    cancel,
		pending:   make(chan struct{}, o.MaxPendingPublishes),
		cmdSem:    make(chan struct{}, 1),
		kick:      make(chan struct{}, 1),
		want:      make(map[string]struct{}),
		dirty:     make(map[string]struct{}),
		byToken:   make(map[string]*waiter),
		byChannel: make(map[string][]*waiter),
	}
}

// Start opens the subscription (lazily: its connection is dialled by the reader, which
// keeps trying until Redis answers) and starts the goroutine that reads it and calls
// deliver for every message, one at a time, in the order Redis sent them.
func (b *Broker) Start(deliver func(channel string, payload []byte)) error {
	if deliver == nil {
		return errors.New("redisbroker: Start with a nil deliver function")
	}
	if b.client == nil {
		return errors.New("redisbroker: New was given a nil client")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return ErrClosed
	case b.ps != nil:
		return errors.New("redisbroker: already started")
	}
	b.ps = b.client.Subscribe(b.ctx) // no channel yet: nothing is sent
	b.wg.Add(1)
	go b.run(b.ps, deliver)
	return nil
}

// Subscribe subscribes to the Redis channel of channel and returns once Redis has
// confirmed it: from then on, a message published on any node reaches this one. On an
// error (Redis unreachable, ctx ended) the subscription is recorded all the same, and
// made when the connection is back.
func (b *Broker) Subscribe(ctx context.Context, channel string) error {
	return b.change(ctx, "subscribe", channel)
}

// Unsubscribe unsubscribes from the Redis channel of channel and returns once Redis has
// confirmed it. On an error the change is recorded all the same: the subscription is
// not made again on the next connection.
func (b *Broker) Unsubscribe(ctx context.Context, channel string) error {
	return b.change(ctx, "unsubscribe", channel)
}

// Close stops the reader, closes the subscription connection and returns when the
// Broker's goroutine has exited: deliver is not called after Close returns. It does not
// close the Redis client. It is safe to call more than once.
func (b *Broker) Close() error {
	b.close.Do(func() {
		b.mu.Lock()
		b.closed = true
		ps := b.ps
		b.mu.Unlock()
		b.cancel() // ends the reader's waits and dials, and the waits of Subscribe
		if ps != nil {
			b.errs = ps.Close() // unblocks the reader's read
		}
		b.wg.Wait()
	})
	return b.errs
}

// Up reports whether the subscription connection is established and answering: true
// from the first successful health check after (re)connecting to the detection of an
// outage. It is false before the first connection and after Close.
func (b *Broker) Up() bool {
	return b.state.Load() == stateUp && b.ctx.Err() == nil
}

// Outages returns how many times the subscription connection went from up to down.
func (b *Broker) Outages() uint64 {
	return b.outages.Load()
}

// waiter is a subscription change waiting for its confirmation: the reply to its
// command for its channel, then the pong of the ping sent after the command. The pong
// is the barrier: Redis answers the commands of a connection in order, so when the pong
// comes the command has taken effect, and a late reply to an older command for the same
// channel cannot pass for the confirmation.
type waiter struct {
	kind    string // "subscribe" or "unsubscribe", as Redis names its reply
	channel string // Redis channel
	token   string // payload of the ping
	replied bool   // the reader has seen a reply of kind for channel since the waiter was registered
	done    chan error
}

// change carries out a subscribe or unsubscribe and waits for its confirmation.
func (b *Broker) change(ctx context.Context, kind, channel string) error {
	ps, err := b.pubSub(kind, b.opts.Prefix+channel)
	if err != nil {
		return err
	}
	w := b.register(kind, b.opts.Prefix+channel) // before the command: its reply may come at once
	defer b.unregister(w)
	if err := b.send(ctx, ps, w); err != nil {
		return fmt.Errorf("redisbroker: %s %q: %w", kind, channel, err)
	}
	select {
	case err := <-w.done:
		if err != nil {
			return fmt.Errorf("redisbroker: %s %q: %w", kind, channel, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("redisbroker: %s %q not confirmed yet: %w", kind, channel, ctx.Err())
	case <-b.ctx.Done():
		return ErrClosed
	}
}

// pubSub returns the subscription, once Start has opened it. Before, it records the
// change for the reader to carry out once started, and fails.
func (b *Broker) pubSub(kind, channel string) (*redis.PubSub, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return nil, ErrClosed
	case b.ps == nil:
		if kind == "subscribe" {
			b.want[channel] = struct{}{}
		} else {
			delete(b.want, channel)
		}
		b.markDirtyLocked(channel)
		return nil, errors.New("redisbroker: not started")
	}
	return b.ps, nil
}

// send records the change, sends its command, then the ping that confirms it.
//
// The change is recorded first, whatever happens next: the contract wants an error to
// mean "not confirmed yet", never "forgotten". go-redis's PubSub keeps the set of
// subscribed channels and subscribes to all of them again whenever it opens a new
// connection, updating the set even when the command fails. Two cases escape it, and
// leave the channel in dirty for the reader to reconcile once the connection is up: ctx
// ends before the command could be sent, and a SUBSCRIBE whose write fails while
// go-redis reconnects at once (it subscribes the new connection to the set as it was
// before adding the channel).
func (b *Broker) send(ctx context.Context, ps *redis.PubSub, w *waiter) error {
	subscribe := w.kind == "subscribe"
	b.mu.Lock()
	if subscribe {
		b.want[w.channel] = struct{}{}
	} else {
		delete(b.want, w.channel)
	}
	b.markDirtyLocked(w.channel)
	b.mu.Unlock()
	if err := b.lockCmd(ctx); err != nil {
		return err
	}
	defer b.unlockCmd()
	b.mu.Lock()
	delete(b.dirty, w.channel) // the command below carries it out
	b.mu.Unlock()
	var err error
	if subscribe {
		err = ps.Subscribe(ctx, w.channel)
	} else {
		err = ps.Unsubscribe(ctx, w.channel)
	}
	if err != nil {
		if subscribe {
			b.mu.Lock()
			b.markDirtyLocked(w.channel)
			b.mu.Unlock()
		}
		return err
	}
	if err := ps.Ping(ctx, w.token); err != nil {
		return err
	}
	if !b.Up() { // the connection is back: no need for the reader to wait longer
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

func (b *Broker) markDirtyLocked(channel string) {
	b.dirty[channel] = struct{}{}
	b.dirtyPending.Store(true)
}

// reconcile sends SUBSCRIBE or UNSUBSCRIBE, as want says, for the dirty channels.
// Subscribing to a channel twice, or unsubscribing from one not subscribed, is
// harmless.
func (b *Broker) reconcile(ctx context.Context, ps *redis.PubSub) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.HealthCheckInterval)
	defer cancel()
	if b.lockCmd(ctx) != nil {
		return
	}
	defer b.unlockCmd()
	b.mu.Lock()
	var subs, unsubs []string
	for c := range b.dirty {
		if _, ok := b.want[c]; ok {
			subs = append(subs, c)
		} else {
			unsubs = append(unsubs, c)
		}
	}
	clear(b.dirty)
	b.dirtyPending.Store(false)
	b.mu.Unlock()
	if len(unsubs) > 0 { // never without channels: that would unsubscribe from all
		_ = ps.Unsubscribe(ctx, unsubs...) // a failure reconnects without them
	}
	if len(subs) > 0 {
		if err := ps.Subscribe(ctx, subs...); err != nil {
			b.mu.Lock()
			for _, c := range subs {
				if _, ok := b.want[c]; ok {
					b.markDirtyLocked(c)
				}
			}
			b.mu.Unlock()
		}
	}
}

// lockCmd takes cmdSem, unless ctx ends first: a caller waits no longer than its
// context allows, even while another one is stuck dialling Redis.
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

func (b *Broker) register(kind, channel string) *waiter {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	w := &waiter{
		kind:    kind,
		channel: channel,
		token:   tokenPrefix + strconv.FormatUint(b.seq, 10),
		done:    make(chan error, 1),
	}
	b.byToken[w.token] = w
	b.byChannel[channel] = append(b.byChannel[channel], w)
	return w
}

func (b *Broker) unregister(w *waiter) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.unregisterLocked(w)
}

func (b *Broker) unregisterLocked(w *waiter) {
	if b.byToken[w.token] != w {
		return
	}
	delete(b.byToken, w.token)
	ws := b.byChannel[w.channel]
	for i, o := range ws {
		if o == w {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(b.byChannel, w.channel)
	} else {
		b.byChannel[w.channel] = ws
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

// confirmed completes the waiter whose ping token is payload, if it still waits, and
// reports whether payload is a token at all (rather than a health check's).
func (b *Broker) confirmed(payload string) bool {
	if !strings.HasPrefix(payload, tokenPrefix) {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	w := b.byToken[payload]
	if w == nil {
		return true // its caller gave up
	}
	b.unregisterLocked(w)
	if w.replied {
		w.done <- nil
	} else { // cannot happen while Redis answers in order; fail rather than claim success
		w.done <- errors.New("redis answered the ping but not the command")
	}
	return true
}

// channels returns how many channels are recorded as subscribed.
func (b *Broker) channels() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.want)
}
