package redisbroker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/wspub/wspub"
	"github.com/wspub/wspub/internal/leavecall"
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

	publishes *leavecall.Group // the PUBLISH commands under way (Options.MaxPendingPublishes)

	// cmdSem is held by the commander while it sends the subscription's commands (a
	// test holds it to keep changes from being sent).
	cmdSem chan struct{}

	// wake tells the commander that dirty has channels to send.
	wake chan struct{}

	// kick cuts the reader's wait before a reconnection short: a command went through,
	// so the connection is back.
	kick chan struct{}

	mu        sync.Mutex
	ps        *redis.PubSub // nil until Start
	closed    bool
	want      map[string]struct{}  // Redis channels recorded as subscribed
	dirty     map[string]struct{}  // channels whose state at Redis may differ from want: the commander sends them
	byChannel map[string][]*waiter // changes waiting for confirmation, by Redis channel
	byToken   map[string][]*waiter // those sent, by the token of the ping sent after them
	seq       uint64               // of ping tokens

	dirtyPending atomic.Bool // dirty is not empty: saves the reader a lock per message
}

const (
	stateConnecting int32 = iota // not connected yet, never up
	stateUp
	stateDown
)

// New returns a Broker that publishes and subscribes through client, as it is
// configured (hooks and instrumentation included): any redis.UniversalClient, such as a
// *redis.Client, *redis.ClusterClient, *redis.Ring or a failover client. The Broker
// opens one dedicated subscription connection (client.Subscribe) in Start and closes it
// in Close; it never closes client, which may serve the application too. A nil opts
// means defaults.
//
// Every Publish, Subscribe and Unsubscribe returns when its context ends (the hub's
// BrokerTimeout) at the latest, whatever the client's timeouts, and also without
// ContextTimeoutEnabled, which redis.NewClient leaves off: go-redis then ignores the
// context's deadline and waits for an unresponsive Redis up to its ReadTimeout (5s by
// default) per reply. Publish runs its command in a goroutine that its caller may leave
// (bounded by Options.MaxPendingPublishes); Subscribe and Unsubscribe record the change
// and wait for its confirmation, while one goroutine of the Broker sends the commands.
func New(client redis.UniversalClient, opts *Options) *Broker {
	o := opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Broker{
		client:    client,
		opts:      o,
		log:       o.Logger,
		ctx:       ctx,
		cancel:    cancel,
		publishes: leavecall.New(o.MaxPendingPublishes),
		cmdSem:    make(chan struct{}, 1),
		wake:      make(chan struct{}, 1),
		kick:      make(chan struct{}, 1),
		want:      make(map[string]struct{}),
		dirty:     make(map[string]struct{}),
		byToken:   make(map[string][]*waiter),
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
	b.wg.Add(2)
	go b.run(b.ps, deliver)
	go b.command(b.ps)
	return nil
}

// Subscribe subscribes to the Redis channel of channel and returns once Redis has
// confirmed it: from then on, a message published on any node reaches this one. It
// returns when ctx ends at the latest. On an error (Redis unreachable or not answering,
// ctx ended) the subscription is recorded all the same, and made when the connection is
// back.
func (b *Broker) Subscribe(ctx context.Context, channel string) error {
	return b.change(ctx, "subscribe", channel)
}

// Unsubscribe unsubscribes from the Redis channel of channel and returns once Redis has
// confirmed it, or when ctx ends at the latest. On an error the change is recorded all
// the same: the subscription is not made again on the next connection.
func (b *Broker) Unsubscribe(ctx context.Context, channel string) error {
	return b.change(ctx, "unsubscribe", channel)
}

// Close stops the reader, closes the subscription connection and returns when the
// Broker's goroutines have exited: deliver is not called after Close returns. It does
// not close the Redis client. It is safe to call more than once.
//
// Close waits for no Redis command, but go-redis's PubSub may first have to finish
// setting up a connection: while Redis accepts connections without answering (paused,
// or a network that drops packets), that lasts up to the client's ReadTimeout (5s by
// default) after Close is called; with ContextTimeoutEnabled, up to HealthCheckInterval.
// Publishes still under way (see Options.MaxPendingPublishes) are not waited for: they
// end when go-redis gives them up, or when the client is closed.
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

// channels returns how many channels are recorded as subscribed.
func (b *Broker) channels() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.want)
}
