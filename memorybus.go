package wspub

import (
	"context"
	"sync"
)

// MemoryBus connects the hubs of one process as if they were nodes sharing a broker:
// give each hub its own MemoryBus.Broker. It is for tests and for processes that run
// several hubs; a single hub needs no broker at all (a nil Options.Broker fans out in
// memory with no encoding round trip). Messages are delivered synchronously, in publish
// order. The zero value is not usable; call NewMemoryBus.
type MemoryBus struct {
	mu   sync.RWMutex
	subs map[string]map[*memoryBroker]struct{}
}

// NewMemoryBus returns an empty bus.
func NewMemoryBus() *MemoryBus {
	return &MemoryBus{subs: make(map[string]map[*memoryBroker]struct{})}
}

// Broker returns a new endpoint of the bus for one hub.
func (b *MemoryBus) Broker() Broker {
	return &memoryBroker{bus: b}
}

// Channels returns how many channels have at least one subscribed endpoint.
func (b *MemoryBus) Channels() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.subs)
}

// Subscribed reports whether any endpoint is subscribed to channel.
func (b *MemoryBus) Subscribed(channel string) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.subs[channel]) > 0
}

type memoryBroker struct {
	bus     *MemoryBus
	deliver func(channel string, payload []byte) // guarded by bus.mu
	closed  bool                                 // guarded by bus.mu
}

func (m *memoryBroker) Start(deliver func(channel string, payload []byte)) error {
	m.bus.mu.Lock()
	defer m.bus.mu.Unlock()
	m.deliver = deliver
	return nil
}

// Publish delivers payload to every endpoint subscribed to channel before it returns.
func (m *memoryBroker) Publish(ctx context.Context, channel string, payload []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.bus.mu.RLock()
	defer m.bus.mu.RUnlock()
	if m.closed {
		return ErrHubClosed
	}
	for ep := range m.bus.subs[channel] {
		if ep.deliver != nil {
			ep.deliver(channel, payload)
		}
	}
	return nil
}

func (m *memoryBroker) Subscribe(_ context.Context, channel string) error {
	m.bus.mu.Lock()
	defer m.bus.mu.Unlock()
	if m.closed {
		return ErrHubClosed
	}
	set := m.bus.subs[channel]
	if set == nil {
		set = make(map[*memoryBroker]struct{})
		m.bus.subs[channel] = set
	}
	set[m] = struct{}{}
	return nil
}

func (m *memoryBroker) Unsubscribe(_ context.Context, channel string) error {
	m.bus.mu.Lock()
	defer m.bus.mu.Unlock()
	m.unsubscribeLocked(channel)
	return nil
}

func (m *memoryBroker) unsubscribeLocked(channel string) {
	if set := m.bus.subs[channel]; set != nil {
		delete(set, m)
		if len(set) == 0 {
			delete(m.bus.subs, channel)
		}
	}
}

// Close detaches the endpoint from the bus; no delivery reaches it afterwards.
func (m *memoryBroker) Close() error {
	m.bus.mu.Lock()
	defer m.bus.mu.Unlock()
	m.closed = true
	for channel := range m.bus.subs {
		m.unsubscribeLocked(channel)
	}
	return nil
}
