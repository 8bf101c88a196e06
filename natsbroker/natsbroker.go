// Package natsbroker connects wspub hubs on several nodes through NATS core pub/sub: a
// message published on one node reaches the WebSocket subscribers of every node.
//
// Give each hub its own Broker over a *nats.Conn you own:
//
//	nc, err := nats.Connect(url,
//		nats.MaxReconnects(-1),                   // required: by default it gives up for good after 60 tries
//		nats.ReconnectWait(500*time.Millisecond), // between reconnect attempts (default 2s)
//		nats.RetryOnFailedConnect(true),          // optional: start while NATS is down
//		nats.ReconnectBufSize(-1),                // optional: see Broker.Publish
//		nats.PingInterval(10*time.Second),        // optional: notice a silent peer sooner
//		nats.FlusherTimeout(2*time.Second),       // optional: see Broker.Publish
//	)
//	...
//	b, err := natsbroker.New(nc, nil)
//	hub := wspub.New(&wspub.Options{Broker: b})
//
// The Broker never closes the connection, and installs none of its handlers: it learns
// about outages from nc.StatusChanged, so the connection's DisconnectErrHandler,
// ReconnectHandler and ErrorHandler stay yours, and other code may share the
// connection. Close the connection after the hub's Shutdown or Close has returned.
//
// A channel's subject is Options.Prefix, a dot, and the channel name in unpadded
// base64url. The nodes need permission to publish and subscribe to Prefix + ".>"; any
// client that may publish there can send messages to your WebSocket clients, so grant it
// to the nodes only.
//
// Delivery is at-most-once, like NATS core: messages published while the connection is
// down are not sent (Publish says so with an error), and messages that arrive faster
// than the hub can take them are dropped once Options.BufferSize are waiting (counted by
// Broker.Dropped and logged). Messages one node publishes to a channel reach the other
// nodes in order.
package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/wspub/wspub"
)

// Errors of the Broker. Errors of NATS itself are returned as nats.go returns them.
var (
	// ErrDown is returned by Publish and Subscribe while the NATS connection is not
	// established (reconnecting, or closed).
	ErrDown = errors.New("natsbroker: NATS connection down")
	// ErrClosed is returned by Start, Publish and Subscribe after Close.
	ErrClosed = errors.New("natsbroker: closed")
	// ErrInvalidName is returned for a channel name that is empty or whose subject
	// would exceed MaxSubjectBytes.
	ErrInvalidName = errors.New("natsbroker: invalid channel name")
)

// Compile-time checks that Broker is what a wspub.Hub expects.
var (
	_ wspub.Broker       = (*Broker)(nil)
	_ wspub.BrokerHealth = (*Broker)(nil)
)

// Options configure a Broker. The zero value, like a nil *Options, means defaults.
type Options struct {
	// Prefix is the first part of every subject the Broker uses: a channel's subject is
	// Prefix + "." + the channel name in unpadded base64url, which is a valid subject
	// token for any name, including the hub's internal names that contain spaces. Nodes
	// that should reach each other must use the same Prefix; give other applications on
	// the same NATS account a different one. It may contain dots, but no whitespace,
	// no '*' or '>' and no empty token. Default: "wspub".
	Prefix string

	// Logger receives nats_broker_down (Warn) and nats_broker_up (Info) once per change
	// of the connection's state, and nats_broker_dropped (Warn, at most once a second)
	// while messages are dropped. Default: nil, silent.
	Logger *slog.Logger

	// BufferSize is how many received messages may wait for the hub: all subscriptions
	// share one queue read by one goroutine, which hands each message to the hub. When
	// it is full, NATS drops new messages (its slow-consumer rule) rather than stall the
	// connection; Broker.Dropped counts them. The hub's deliver only queues a message
	// per local connection, so the queue fills only when the hub is overloaded.
	// Default: 65536.
	BufferSize int

	// Timeout bounds the server's confirmation of Subscribe and Unsubscribe, and of
	// Publish with Confirm, when the caller's context has no deadline (a wspub.Hub always
	// passes one: Options.BrokerTimeout). Default: 2s.
	Timeout time.Duration

	// Confirm makes Publish wait until the NATS server has received the message (a
	// PING/PONG round trip after it). Without it, Publish returns once the message is
	// buffered on a connection that is up, so a message sent on a connection that
	// breaks at that moment, or that is silently dead (no FIN, as in a network
	// partition, which NATS notices only after PingInterval × MaxPingsOut), is lost
	// while Publish returned nil. With it, such a Publish fails when its context ends.
	// It costs one round trip to the server per Publish. Default: false.
	Confirm bool
}

// MaxSubjectBytes bounds a subject, so that its SUB and PUB protocol lines stay within
// nats-server's default max_control_line of 4096 bytes (a longer line makes the server
// drop the connection). With the default Prefix, it admits channel names (and user IDs)
// of up to about 2990 bytes.
const MaxSubjectBytes = 4000

const (
	defaultPrefix     = "wspub"
	defaultBufferSize = 65536
	defaultTimeout    = 2 * time.Second
	checkInterval     = time.Second // reconciles the state and looks for drops
)

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.Prefix == "" {
		c.Prefix = defaultPrefix
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.BufferSize <= 0 {
		c.BufferSize = defaultBufferSize
	}
	if c.Timeout <= 0 {
		c.Timeout = defaultTimeout
	}
	return c
}

// Broker is a wspub.Broker and wspub.BrokerHealth over one NATS connection. Create it
// with New and hand it to one wspub.Hub (Options.Broker), which starts and closes it.
// Its methods are safe for concurrent use.
type Broker struct {
	nc     *nats.Conn
	opts   Options
	log    *slog.Logger
	prefix string // Prefix + "."
	// msgs is the queue of every subscription (ChanSubscribe), read by the one goroutine
	// run. nats.go's handler subscriptions would start a goroutine per channel, each with
	// a pending list of up to 500 000 messages or 64 MiB: a node with 10 000 channels would
	// run 10 000 goroutines and could buffer gigabytes for a stalled hub. One queue costs
	// one goroutine and at most BufferSize messages, keeps the connection's order, and
	// cannot stall nats.go's reader (it drops into a full queue instead, and we count
	// it). Its price, that an overloaded hub loses messages of every channel rather than
	// of the busiest one, only matters when deliver cannot keep up, and deliver only
	// queues a message per local connection.
	msgs chan *nats.Msg

	mu      sync.Mutex
	subs    map[string]*nats.Subscription // channel name → its NATS subscription
	retired uint64                        // drops of subscriptions that have ended
	started bool
	status  chan nats.Status // from nc.StatusChanged, once started

	closed  atomic.Bool
	outages atomic.Uint64
	done    chan struct{} // closed by Close to stop run
	wg      sync.WaitGroup
}

// New returns a Broker that uses nc, which stays the caller's to close (after the hub
// is closed). opts may be nil. It fails for a nil connection or an invalid Prefix.
func New(nc *nats.Conn, opts *Options) (*Broker, error) {
	if nc == nil {
		return nil, errors.New("natsbroker: nil *nats.Conn")
	}
	o := opts.withDefaults()
	if err := validPrefix(o.Prefix); err != nil {
		return nil, err
	}
	return &Broker{
		nc:     nc,
		opts:   o,
		log:    o.Logger,
		prefix: o.Prefix + ".",
		msgs:   make(chan *nats.Msg, o.BufferSize),
		subs:   make(map[string]*nats.Subscription),
		done:   make(chan struct{}),
	}, nil
}

// Start starts the goroutine that hands received messages to deliver, in the order the
// connection received them, and watches the connection's state. The hub calls it once.
func (b *Broker) Start(deliver func(channel string, payload []byte)) error {
	if deliver == nil {
		return errors.New("natsbroker: nil deliver")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed.Load():
		return ErrClosed
	case b.started:
		return errors.New("natsbroker: already started")
	}
	b.started = true
	// Listen first, then read the state: a change in between is both seen and queued,
	// and applying it twice is harmless.
	b.status = b.nc.StatusChanged(nats.CONNECTED, nats.RECONNECTING, nats.DISCONNECTED, nats.CLOSED)
	up := b.nc.IsConnected()
	if !up {
		b.logDown(b.nc.Status())
	}
	b.wg.Add(1)
	go b.run(deliver, up)
	return nil
}

// Publish sends payload to the nodes subscribed to channel. It fails at once with
// ErrDown while the connection is not established: nats.go would otherwise buffer the
// message until the reconnect and report success, hiding the outage from the hub (and
// send it late, if ever). A Publish that races the loss of the connection can still
// return nil and the message be lost or sent after the reconnect; pass
// nats.ReconnectBufSize(-1) to nats.Connect to make such a Publish fail too, and see
// Options.Confirm for connections that die silently. Without Options.Confirm, Publish
// waits on the network only when nats.go's 32 KiB write buffer is full and it writes to
// the socket itself, which nats.FlusherTimeout bounds (default one minute), not ctx. With
// it, ctx bounds the wait for the server's confirmation.
func (b *Broker) Publish(ctx context.Context, channel string, payload []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.closed.Load() {
		return ErrClosed
	}
	subject, err := b.subject(channel)
	if err != nil {
		return err
	}
	if !b.nc.IsConnected() {
		return b.downError()
	}
	if err := b.nc.Publish(subject, payload); err != nil {
		return err
	}
	if !b.opts.Confirm {
		return nil
	}
	return b.flush(ctx)
}

// Subscribe subscribes to channel's subject and waits until the server has confirmed
// it, so that messages published anywhere from then on reach this node. While the
// connection is down it fails with ErrDown, but the subscription stands: nats.go sends
// every live subscription again when it reconnects (Conn.resendSubscriptions). It is
// idempotent.
func (b *Broker) Subscribe(ctx context.Context, channel string) error {
	subject, err := b.subject(channel)
	if err != nil {
		return err
	}
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return ErrClosed
	}
	if _, ok := b.subs[channel]; !ok {
		// Every subscription delivers into b.msgs (see Broker.msgs). nats.go never closes
		// the channel of a ChanSubscribe, neither on Unsubscribe nor on Close.
		sub, err := b.nc.ChanSubscribe(subject, b.msgs)
		if err != nil {
			b.mu.Unlock()
			return err
		}
		b.subs[channel] = sub
	}
	b.mu.Unlock()
	if !b.nc.IsConnected() {
		return fmt.Errorf("%w (the subscription is sent when it reconnects)", b.downError())
	}
	return b.flush(ctx)
}

// Unsubscribe ends the subscription of channel: from its return no new message of the
// channel is queued for the hub (those already queued are still delivered). When
// connected, it waits until the server has confirmed it, so that the server no longer
// sends the channel to this node. While the
// connection is down it succeeds at once: the server forgot the connection's
// subscriptions when it was lost, and nats.go sends only the live ones again.
func (b *Broker) Unsubscribe(ctx context.Context, channel string) error {
	b.mu.Lock()
	sub, ok := b.subs[channel]
	if !ok {
		b.mu.Unlock()
		return nil
	}
	delete(b.subs, channel)
	err := b.retire(sub)
	b.mu.Unlock()
	if err != nil {
		return err
	}
	if !b.nc.IsConnected() {
		return nil
	}
	return b.flush(ctx)
}

// retire ends sub, keeping its count of drops. The caller holds b.mu.
func (b *Broker) retire(sub *nats.Subscription) error {
	if n, err := sub.Dropped(); err == nil {
		b.retired += uint64(n)
	}
	if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return err // a closed connection has no subscriptions left to end
	}
	return nil
}

// Close ends every subscription of the Broker and stops its goroutine; deliver is not
// called after Close returns. It does not close the NATS connection. It is safe to call
// more than once.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed.Swap(true) {
		b.mu.Unlock()
		return nil
	}
	var errs []error
	for _, sub := range b.subs {
		if err := b.retire(sub); err != nil {
			errs = append(errs, err)
		}
	}
	b.subs = nil
	started := b.started
	b.mu.Unlock()
	if started {
		close(b.done)
		b.wg.Wait()
		b.nc.RemoveStatusListener(b.status)
	}
	return errors.Join(errs...)
}

// flush waits until the server has processed everything sent so far, bounded by ctx or,
// without a deadline, by Options.Timeout. A failure while the connection is down wraps
// ErrDown.
func (b *Broker) flush(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.opts.Timeout)
		defer cancel()
	}
	err := b.nc.FlushWithContext(ctx)
	if err != nil && !b.nc.IsConnected() {
		// A connection lost during the wait fails the flush with nats.ErrConnectionClosed
		// although it is only reconnecting: say what happened.
		return fmt.Errorf("%w: %w", b.downError(), err)
	}
	return err
}

func (b *Broker) downError() error {
	return fmt.Errorf("%w: %s", ErrDown, b.nc.Status())
}
