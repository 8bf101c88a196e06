// Package natsbroker connects wspub hubs on several nodes through NATS core pub/sub: a
// message published on one node reaches the WebSocket subscribers of every node.
//
// Give each hub its own Broker over a *nats.Conn you own:
//
//	import "github.com/nats-io/nats.go"
//
//	nc, err := nats.Connect(url,
//		nats.MaxReconnects(-1),                   // required: by default it gives up for good after 60 tries
//		nats.ReconnectWait(500*time.Millisecond), // between reconnect attempts (default 2s)
//		nats.RetryOnFailedConnect(true),          // optional: start while NATS is down
//		nats.ReconnectBufSize(-1),                // optional: see Broker.Publish
//		nats.PingInterval(10*time.Second),        // optional: notice a silent peer sooner
//		nats.FlusherTimeout(2*time.Second),       // optional: see "An unresponsive server"
//	)
//	if err != nil {
//		return err
//	}
//	b, err := natsbroker.New(nc, nil)
//	if err != nil {
//		return err
//	}
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
//
// # An unresponsive server
//
// Every Publish, Subscribe and Unsubscribe returns when its context ends at the latest
// (the hub gives each one its BrokerTimeout, 2s by default; without a deadline,
// Options.Timeout), also with the connection made as above with nats.go's defaults and
// a server that stops reading (a paused process, a network that drops packets). nats.go
// notices such a server only after PingInterval × MaxPingsOut (2 minutes × 2 by
// default), and once the socket buffers are full each of its writes blocks, holding the
// connection's lock and so every other call, for up to FlusherTimeout (1 minute by
// default). Until then a Publish without Options.Confirm succeeds although its message
// only waits in buffers (sent if the server reads again, lost if nats.go gives the
// connection up); from then on Publishes fail with their context, and once
// Options.MaxPendingPublishes (default 64) of them wait inside nats.go, at once with
// ErrStalled: the Broker's goroutines and payloads stay bounded however long the
// outage. Subscribe and Unsubscribe record the change, which the Broker's control
// goroutine carries out as soon as the connection takes it; Up and the hub's Stats never
// wait. When the server reads again, everything under way completes at once, and the
// recorded subscriptions are in place: nothing needs to be called. A Publish that failed
// with its context is not undone: its message may still be sent once the connection
// takes it, after those of later Publishes. Set nats.FlusherTimeout to a few seconds to
// have nats.go give up such a connection, and reconnect, sooner.
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
	"github.com/wspub/wspub/internal/leavecall"
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
	// ErrStalled is returned by Publish, at once, while Options.MaxPendingPublishes
	// earlier Publishes have outlived their callers' contexts inside nats.go: the
	// connection takes nothing, and a new Publish would only wait as long.
	ErrStalled = errors.New("natsbroker: publish: the connection has not taken the pending publishes")
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

	// Timeout bounds Publish, Subscribe and Unsubscribe when the caller's context has no
	// deadline (a wspub.Hub always passes one: Options.BrokerTimeout). Default: 2s.
	Timeout time.Duration

	// Confirm makes Publish wait until the NATS server has received the message (a
	// PING/PONG round trip after it). Without it, Publish returns once the message is
	// buffered on a connection that is up, so a message sent on a connection that
	// breaks at that moment, or that is silently dead (no FIN, as in a network
	// partition, which NATS notices only after PingInterval × MaxPingsOut), is lost
	// while Publish returned nil. With it, such a Publish fails when its context ends.
	// It costs one round trip to the server per Publish. Default: false.
	Confirm bool

	// MaxPendingPublishes bounds the Publishes under way in nats.go at once. Each
	// Publish calls nats.go from a goroutine of its own, so that it returns when its
	// context ends even while nats.go is stuck writing to a server that reads nothing
	// (see Broker). A call that its caller has left keeps its goroutine and its payload
	// until nats.go returns: at once when the server reads again, or when the write
	// fails after nats.FlusherTimeout (one minute by default; the connection then
	// reconnects). With MaxPendingPublishes calls under way, a Publish waits until one
	// of them ends, or until its context ends; when all of them have been left by their
	// callers, Publish fails at once with ErrStalled. So during an outage, however long
	// and however many Publishes are asked for, the Broker holds at most
	// MaxPendingPublishes goroutines and payloads. Default: 64.
	MaxPendingPublishes int
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

	defaultMaxPendingPublishes = 64
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
	if c.MaxPendingPublishes <= 0 {
		c.MaxPendingPublishes = defaultMaxPendingPublishes
	}
	return c
}

// Broker is a wspub.Broker and wspub.BrokerHealth over one NATS connection. Create it
// with New and hand it to one wspub.Hub (Options.Broker), which starts and closes it.
// Its methods are safe for concurrent use.
//
// No method waits on nats.go for longer than its context allows. Every method of a
// *nats.Conn takes the connection's lock, which nats.go holds while it writes to the
// socket; when the server stops reading (a paused process, a network that drops
// packets) and the socket buffers are full, a write blocks, lock held, for up to the
// connection's FlusherTimeout (one minute by default), whatever any context says. So
// Publish calls nats.go from a goroutine it may leave (see Options.MaxPendingPublishes),
// Subscribe and Unsubscribe record the change and wait for its confirmation while the
// Broker's control goroutine carries it out, and Up reads the state that goroutine last
// saw.
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

	mu      sync.Mutex                    // never held while calling nats.go, but for Subscription.Dropped
	subs    map[string]*nats.Subscription // channel name → its NATS subscription; written by control (and Close)
	want    map[string]string             // channel name → subject, of the channels recorded as subscribed
	dirty   map[string]struct{}           // channels whose subscription may differ from want: control carries them out
	waiters map[string][]*waiter          // changes waiting for confirmation, by channel name
	batch   uint64                        // of the changes control carries out
	retired uint64                        // drops of subscriptions that have ended
	started bool
	status  chan nats.Status // from nc.StatusChanged, once started

	wake chan struct{} // tells control that dirty has channels

	// connected and lastStatus are the connection's state as control last saw it.
	connected  atomic.Bool
	lastStatus atomic.Int32 // a nats.Status

	calls *leavecall.Group // the Publishes under way in nats.go (MaxPendingPublishes)

	closed  atomic.Bool
	outages atomic.Uint64
	done    chan struct{} // closed by Close to stop run and control
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
	b := &Broker{
		nc:      nc,
		opts:    o,
		log:     o.Logger,
		prefix:  o.Prefix + ".",
		msgs:    make(chan *nats.Msg, o.BufferSize),
		subs:    make(map[string]*nats.Subscription),
		want:    make(map[string]string),
		dirty:   make(map[string]struct{}),
		waiters: make(map[string][]*waiter),
		wake:    make(chan struct{}, 1),
		calls:   leavecall.New(o.MaxPendingPublishes),
		done:    make(chan struct{}),
	}
	b.connected.Store(nc.IsConnected()) // Start reads it again, then control follows it
	b.lastStatus.Store(int32(nc.Status()))
	return b, nil
}

// Start starts the goroutine that hands received messages to deliver, in the order the
// connection received them, and the one that follows the connection's state and carries
// out subscription changes. The hub calls it once.
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
	up, status := b.nc.IsConnected(), b.nc.Status()
	b.connected.Store(up)
	b.lastStatus.Store(int32(status))
	if !up {
		b.logDown(status)
	}
	b.wg.Add(2)
	go b.run(deliver)
	go b.control(up)
	if len(b.dirty) > 0 { // changes recorded before Start
		b.wakeControl()
	}
	return nil
}

// Publish sends payload to the nodes subscribed to channel. It returns when ctx ends at
// the latest (without a deadline, after Options.Timeout). It fails at once with ErrDown
// while the connection is not established: nats.go would otherwise buffer the message
// until the reconnect and report success, hiding the outage from the hub (and send it
// late, if ever). A Publish that races the loss of the connection can still return nil
// and the message be lost or sent after the reconnect; pass nats.ReconnectBufSize(-1)
// to nats.Connect to make such a Publish fail too, and see Options.Confirm for
// connections that die silently: without it, Publish returns once the message is
// buffered, so on a connection whose server has stopped reading it succeeds until
// nats.go's buffer and the socket's are full, and fails (with ctx) from then on.
//
// nats.go's Publish waits on the network when its 32 KiB write buffer is full and it
// writes to the socket itself (and its other calls wait while its flusher writes):
// that nats.FlusherTimeout bounds (default one minute), not ctx. So Publish runs the
// call in a goroutine of its own, which it leaves when ctx ends; see
// Options.MaxPendingPublishes.
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
	if !b.connected.Load() {
		return fmt.Errorf("%w: %s", ErrDown, nats.Status(b.lastStatus.Load()))
	}
	ctx, cancel := b.bounded(ctx)
	defer cancel()
	return b.call(ctx, func() error {
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
	})
}

// Subscribe subscribes to channel's subject and waits until the server has confirmed
// it, so that messages published anywhere from then on reach this node, or until ctx
// ends (without a deadline, Options.Timeout). While the connection is down it fails
// with ErrDown, but the subscription stands: nats.go sends every live subscription again
// when it reconnects (Conn.resendSubscriptions). When ctx ends first, the subscription
// is recorded all the same, and made as soon as the connection takes it. It is
// idempotent.
func (b *Broker) Subscribe(ctx context.Context, channel string) error {
	subject, err := b.subject(channel)
	if err != nil {
		return err
	}
	return b.change(ctx, "subscribe", channel, subject)
}

// Unsubscribe ends the subscription of channel: once it has returned nil, no new message
// of the channel is queued for the hub (those already queued are still delivered). When
// connected, it waits until the server has confirmed it, so that the server no longer
// sends the channel to this node, or until ctx ends (without a deadline,
// Options.Timeout), the change recorded all the same. While the connection is down it
// succeeds at once: the server forgot the connection's subscriptions when it was lost,
// and nats.go sends only the live ones again.
func (b *Broker) Unsubscribe(ctx context.Context, channel string) error {
	return b.change(ctx, "unsubscribe", channel, "")
}

// Close ends every subscription of the Broker and stops its goroutines; deliver is not
// called after Close returns. It does not close the NATS connection. It is safe to call
// more than once. While nats.go is stuck writing to a server that reads nothing, Close
// waits for it like every call of the connection: up to nats.FlusherTimeout (one minute
// by default); Publishes still under way (Options.MaxPendingPublishes) are not waited
// for.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed.Swap(true) {
		b.mu.Unlock()
		return nil
	}
	started := b.started
	b.mu.Unlock()
	if started {
		close(b.done)
		b.wg.Wait()
		b.nc.RemoveStatusListener(b.status)
	}
	b.mu.Lock() // control has exited: the subscriptions are Close's
	subs := b.subs
	b.subs = nil
	for _, sub := range subs {
		b.countDropsLocked(sub)
	}
	b.mu.Unlock()
	var errs []error
	for _, sub := range subs {
		if err := unsubscribe(sub); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// countDropsLocked adds the drops of sub, which is ending, to retired.
func (b *Broker) countDropsLocked(sub *nats.Subscription) {
	if n, err := sub.Dropped(); err == nil {
		b.retired += uint64(n)
	}
}

// unsubscribe ends sub; a closed connection has no subscriptions left to end.
func unsubscribe(sub *nats.Subscription) error {
	if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return err
	}
	return nil
}

// bounded returns ctx, given Options.Timeout as its deadline if it has none.
func (b *Broker) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, b.opts.Timeout)
}

// flush waits until the server has processed everything sent so far, bounded by ctx. A
// failure while the connection is down wraps ErrDown. It takes the connection's lock.
func (b *Broker) flush(ctx context.Context) error {
	err := b.nc.FlushWithContext(ctx)
	if err != nil && !b.nc.IsConnected() {
		// A connection lost during the wait fails the flush with nats.ErrConnectionClosed
		// although it is only reconnecting: say what happened.
		return fmt.Errorf("%w: %w", b.downError(), err)
	}
	return err
}

// downError says that the connection is down; it takes the connection's lock.
func (b *Broker) downError() error {
	return fmt.Errorf("%w: %s", ErrDown, b.nc.Status())
}
