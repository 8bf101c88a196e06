package wspub

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
)

// Broker carries messages between the hubs of several nodes (processes behind a load
// balancer), so that a message published on one node reaches subscribers connected to
// any node. Adapters for Redis (github.com/wspub/wspub/redisbroker) and NATS
// (github.com/wspub/wspub/natsbroker) live in their own modules; MemoryBus connects
// hubs of one process.
//
// A hub calls Start once, from New, before anything else; then Publish, Subscribe and
// Unsubscribe from any goroutine; and Close once, at the end of Shutdown or Close, after
// which it calls nothing. (A Publish that application code started before the hub
// closed, in a Handler that ignores its cancelled context, may still be under way when
// Close is called: Close must not wait for it, and it must return an error.) Channel names are opaque strings: they include names wspub
// uses internally, which contain a space. Payloads are opaque bytes, encoded once per
// publish by the hub. The payload given to Publish is never modified afterwards, so an
// adapter may keep it; the payload an adapter gives to deliver belongs to the hub from
// then on (it is queued and written later), so the adapter must not reuse its buffer.
//
// Broker calls run with a context bounded by Options.BrokerTimeout. A subscribe or
// unsubscribe holds up the client or the disconnect that caused it until the broker
// answers or the timeout passes, so an unresponsive (rather than down) broker slows
// subscribes and disconnects by up to BrokerTimeout each.
//
// Delivery is at-most-once. An adapter must deliver the messages published to a channel
// by one node in the order they were published, and must never block in deliver for
// long: the hub's deliver queues the message for each local subscriber and returns.
type Broker interface {
	// Start begins delivering the messages of subscribed channels to deliver. A message
	// published by this node comes back to it too; the hub recognises and skips it.
	Start(deliver func(channel string, payload []byte)) error

	// Publish sends payload to every node subscribed to channel. It returns promptly
	// when the broker is unreachable: at the latest when ctx ends.
	Publish(ctx context.Context, channel string, payload []byte) error

	// Subscribe records that this node has local subscribers for channel, and
	// Unsubscribe that it has none any more. The adapter keeps the broker's state equal
	// to what was recorded, also across reconnects: an error means the broker has not
	// confirmed the change yet, not that it was forgotten. The hub serialises the calls
	// of one channel, and only calls Subscribe for a channel it has not subscribed to.
	Subscribe(ctx context.Context, channel string) error
	Unsubscribe(ctx context.Context, channel string) error

	// Close stops the adapter. deliver is not called after Close returns.
	Close() error
}

// BrokerHealth is implemented by brokers that can tell whether their connection is up;
// Hub.Stats reports it for readiness probes.
type BrokerHealth interface {
	// Up reports whether the broker connection is established.
	Up() bool
	// Outages returns how many times the connection has been lost.
	Outages() uint64
}

// BrokerDrops is implemented by brokers that can lose incoming messages on their own
// (a full delivery buffer); Hub.Stats reports the count as BrokerDropped.
type BrokerDrops interface {
	Dropped() uint64
}

// ErrBroker wraps the errors of the Broker: Publish returns it when the message reached
// this node's subscribers but could not be handed to the broker.
var ErrBroker = errors.New("wspub: broker")

// Channel names of the hub's own traffic on the broker. Application channel names never
// contain a space, so these cannot collide with them.
const (
	brokerBroadcast  = "wspub broadcast"
	brokerUserPrefix = "wspub user "
)

// payloadVersion is the first byte of a broker payload: version, then the 8-byte ID of
// the publishing hub, then the encoded envelope.
const (
	payloadVersion = 1
	payloadHeader  = 9
)

func (h *Hub) encodePayload(frame []byte) []byte {
	p := make([]byte, payloadHeader, payloadHeader+len(frame))
	p[0] = payloadVersion
	binary.BigEndian.PutUint64(p[1:], h.nodeID)
	return append(p, frame...)
}

// deliver is the hub's side of Broker.Start: it fans a message from another node out
// to this node's connections. It never blocks on a connection. A message larger than
// this node's send queues (nodes configured differently) is dropped and counted as
// BrokerInvalid.
func (h *Hub) deliver(channel string, payload []byte) {
	if len(payload) <= payloadHeader || payload[0] != payloadVersion {
		h.stats.brokerInvalid.Add(1)
		return
	}
	if binary.BigEndian.Uint64(payload[1:]) == h.nodeID {
		return // published here and delivered locally already
	}
	frame := payload[payloadHeader:]
	var targets []*Conn
	switch {
	case channel == brokerBroadcast:
		targets = h.reg.allConns()
	case strings.HasPrefix(channel, brokerUserPrefix):
		targets = h.reg.userConns(channel[len(brokerUserPrefix):])
	default:
		targets = h.reg.subscribers(channel)
	}
	if h.fanoutLocal(frame, targets) != nil { // larger than this node's queues
		h.stats.brokerInvalid.Add(1)
		return
	}
	h.stats.brokerReceived.Add(1)
}

// interest tracks which channels this hub has subscribed to at the broker. Each channel
// hashes to one stripe, whose mutex serialises its broker calls: a subscribe racing the
// last unsubscribe cannot leave the node deaf or leak a broker subscription, because
// every change of local interest is followed by a sync that reads the current state.
type interest struct {
	seed    maphash.Seed
	stripes [256]struct {
		mu   sync.Mutex
		subs map[string]struct{}
	}
}

// syncInterest makes the broker subscription of name match local interest: a channel
// with local subscribers, a user with local connections.
func (h *Hub) syncInterest(name string) {
	if h.broker == nil || h.isClosed() { // closing the broker drops every subscription
		return
	}
	s := &h.interest.stripes[maphash.String(h.interest.seed, name)%uint64(len(h.interest.stripes))]
	s.mu.Lock()
	defer s.mu.Unlock()
	want := h.reg.interested(name)
	_, have := s.subs[name]
	if want == have {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.BrokerTimeout)
	defer cancel()
	op, err := "subscribe", error(nil)
	if want {
		if s.subs == nil {
			s.subs = make(map[string]struct{})
		}
		s.subs[name] = struct{}{}
		err = h.broker.Subscribe(ctx, name)
	} else {
		op = "unsubscribe"
		delete(s.subs, name)
		err = h.broker.Unsubscribe(ctx, name)
	}
	h.brokerResult(op, name, err) // on error, recorded all the same: the adapter re-establishes it
}

// brokerPublish hands an encoded message to the broker, bounded by BrokerTimeout.
func (h *Hub) brokerPublish(ctx context.Context, channel string, frame []byte) error {
	ctx, cancel := context.WithTimeout(ctx, h.opts.BrokerTimeout)
	defer cancel()
	err := h.broker.Publish(ctx, channel, h.encodePayload(frame))
	h.brokerResult("publish", channel, err)
	if err != nil {
		return fmt.Errorf("%w: publish to %q: %w", ErrBroker, channel, err)
	}
	return nil
}

// brokerResult counts a failed broker operation and logs the first failure of a series
// (wspub_broker_error) and the first success after it (wspub_broker_recovered), so that
// an outage costs two log lines, not one per Publish.
func (h *Hub) brokerResult(op, channel string, err error) {
	if err == nil {
		if h.brokerFailing.Load() && h.brokerFailing.CompareAndSwap(true, false) {
			h.log.LogAttrs(context.Background(), slog.LevelInfo, "wspub_broker_recovered",
				slog.String("op", op), slog.Uint64("errors", h.stats.brokerErrors.Load()))
		}
		return
	}
	h.stats.brokerErrors.Add(1)
	if h.brokerFailing.CompareAndSwap(false, true) {
		h.log.LogAttrs(context.Background(), slog.LevelWarn, "wspub_broker_error",
			slog.String("op", op), slog.String("channel", channel), slog.String("error", err.Error()),
			slog.String("note", "logged once until a broker operation succeeds; see Stats.BrokerErrors"))
	}
}

// startBroker starts the broker and subscribes to broadcasts; failures are logged, and
// the hub keeps serving its own connections.
func (h *Hub) startBroker() {
	if h.broker == nil {
		return
	}
	if err := h.broker.Start(h.deliver); err != nil {
		h.stats.brokerErrors.Add(1)
		h.log.LogAttrs(context.Background(), slog.LevelError, "wspub_broker_error",
			slog.String("op", "start"), slog.String("error", err.Error()))
	}
	h.syncInterest(brokerBroadcast)
}

// stopBroker closes the broker, once, when the hub's connections are gone.
func (h *Hub) stopBroker() {
	if h.broker == nil {
		return
	}
	h.brokerOnce.Do(func() {
		if err := h.broker.Close(); err != nil {
			h.log.LogAttrs(context.Background(), slog.LevelWarn, "wspub_broker_error",
				slog.String("op", "close"), slog.String("error", err.Error()))
		}
	})
}
