package natsbroker

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// run hands received messages to deliver, and looks for drops. It never calls nats.go
// but for Subscription.Dropped, so that no write stuck in nats.go holds up deliveries.
func (b *Broker) run(deliver func(string, []byte)) {
	defer b.wg.Done()
	tick := time.NewTicker(checkInterval)
	defer tick.Stop()
	var (
		maybeDrops bool   // the queue was full since the last check
		logged     uint64 // drops already logged
	)
	for {
		select {
		case <-b.done:
			return
		case m := <-b.msgs:
			if name, ok := b.channel(m.Subject); ok { // always: we subscribe to our subjects only
				deliver(name, m.Data)
			}
			// nats.go drops only into a full queue, which stays full until this receive.
			if len(b.msgs) >= cap(b.msgs)-1 {
				maybeDrops = true
			}
		case <-tick.C:
			if maybeDrops {
				maybeDrops = false
				if n := b.Dropped(); n > logged {
					b.log.LogAttrs(context.Background(), slog.LevelWarn, "nats_broker_dropped",
						slog.String("prefix", b.opts.Prefix), slog.Uint64("dropped", n-logged),
						slog.Uint64("total", n), slog.Int("buffer_size", cap(b.msgs)))
					logged = n
				}
			}
		}
	}
}

// control follows the connection's state (up is the state when Start read it), and
// carries out the subscription changes. Its calls of nats.go may wait for a stuck write;
// nothing else waits for it.
func (b *Broker) control(up bool) {
	defer b.wg.Done()
	tick := time.NewTicker(checkInterval)
	defer tick.Stop()
	downSince := time.Now()
	observe := func(nowUp bool, status nats.Status) {
		b.lastStatus.Store(int32(status))
		b.connected.Store(nowUp)
		switch {
		case nowUp == up:
		case nowUp:
			up = true
			b.log.LogAttrs(context.Background(), slog.LevelInfo, "nats_broker_up",
				slog.String("prefix", b.opts.Prefix), slog.String("server", b.nc.ConnectedUrlRedacted()),
				slog.Duration("down_for", time.Since(downSince)), slog.Uint64("outages", b.outages.Load()))
			b.applyChanges() // those nats.go refused while down
		default:
			up = false
			downSince = time.Now()
			b.outages.Add(1)
			b.logDown(status)
		}
	}
	for {
		select {
		case <-b.done:
			return
		case <-b.wake:
			b.applyChanges()
		case s := <-b.status:
			// Events arrive in order, so even a short outage is counted and logged.
			observe(s == nats.CONNECTED, s)
		case <-tick.C:
			// Status events are dropped when their channel is full: catch up with the
			// present state.
			observe(b.nc.IsConnected(), b.nc.Status())
			b.applyChanges()
		}
	}
}

func (b *Broker) logDown(status nats.Status) {
	attrs := []slog.Attr{
		slog.String("prefix", b.opts.Prefix), slog.String("status", status.String()),
		slog.Uint64("outages", b.outages.Load()),
	}
	if err := b.nc.LastError(); err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	b.log.LogAttrs(context.Background(), slog.LevelWarn, "nats_broker_down", attrs...)
}

// Up reports whether the NATS connection is established (and the Broker not closed), as
// the Broker last saw it: from the connection's status events, and at least every
// second while the connection takes calls. It never waits on nats.go. A wspub.Hub
// reports it as Stats.BrokerUp.
func (b *Broker) Up() bool {
	return !b.closed.Load() && b.connected.Load()
}

// Outages returns how many times the connection has gone from established to lost
// (reconnecting, disconnected or closed) since Start. A wspub.Hub reports it as
// Stats.BrokerOutages.
func (b *Broker) Outages() uint64 {
	return b.outages.Load()
}

// Dropped returns how many received messages NATS has dropped because the queue to the
// hub was full (see Options.BufferSize). wspub.Stats has no field for it: export it to
// your metrics yourself. A drop in the very instant a channel is unsubscribed can go
// uncounted.
func (b *Broker) Dropped() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.retired
	for _, sub := range b.subs {
		if d, err := sub.Dropped(); err == nil {
			n += uint64(d)
		}
	}
	return n
}
