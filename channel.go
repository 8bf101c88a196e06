package wspub

import (
	"strings"
	"sync"
	"sync/atomic"
)

// registry maps channels to their subscribers and back, and indexes connections by ID
// and user. Every mutation holds mu for writing. Fan-out reads a snapshot slice of a
// channel's subscribers, built lazily after a change, so that Publish enqueues with no
// lock held and subscribe/unsubscribe churn costs O(1) instead of a copy per change.
type registry struct {
	mu            sync.RWMutex
	channels      map[string]*channel
	conns         map[string]*Conn
	users         map[string]map[*Conn]struct{}
	subscriptions int
	all           atomic.Pointer[[]*Conn] // snapshot of conns; nil when stale

	// Connection slots, taken before the upgrade so that concurrent handshakes cannot
	// overshoot a limit, and given back when the connection is removed or fails to start.
	slots     int
	userSlots map[string]int
	limits    registryLimits
}

// registryLimits are the quotas the registry enforces; 0 means no limit.
type registryLimits struct {
	conns, connsPerUser, subsPerConn int
}

// reservation is the outcome of registry.reserve.
type reservation int

const (
	reserved reservation = iota
	hubFull
	userFull
)

// channel is the set of local subscribers of one channel name.
type channel struct {
	subs map[*Conn]struct{}
	snap atomic.Pointer[[]*Conn] // snapshot of subs; nil when stale
}

func newRegistry(limits registryLimits) *registry {
	return &registry{
		channels:  make(map[string]*channel),
		conns:     make(map[string]*Conn),
		users:     make(map[string]map[*Conn]struct{}),
		userSlots: make(map[string]int),
		limits:    limits,
	}
}

// reserve takes a connection slot for a user ("" for anonymous) unless a limit is
// reached. Every reserved slot must be given back with release, or by remove once the
// connection has been added.
func (r *registry) reserve(userID string) reservation {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.limits.conns > 0 && r.slots >= r.limits.conns {
		return hubFull
	}
	if userID != "" {
		if r.limits.connsPerUser > 0 && r.userSlots[userID] >= r.limits.connsPerUser {
			return userFull
		}
		r.userSlots[userID]++
	}
	r.slots++
	return reserved
}

// release gives back a slot taken by reserve.
func (r *registry) release(userID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.releaseLocked(userID)
}

func (r *registry) releaseLocked(userID string) {
	r.slots--
	if userID == "" {
		return
	}
	if n := r.userSlots[userID] - 1; n > 0 {
		r.userSlots[userID] = n
	} else {
		delete(r.userSlots, userID)
	}
}

// add registers c by ID and user.
func (r *registry) add(c *Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conns[c.id] = c
	if c.userID != "" {
		set := r.users[c.userID]
		if set == nil {
			set = make(map[*Conn]struct{})
			r.users[c.userID] = set
		}
		set[c] = struct{}{}
	}
	r.all.Store(nil)
}

// remove takes c out of every channel it is on (O(its subscriptions)), deletes channels
// left empty, and drops it from the ID and user indexes. It returns the channels c was
// on, for the broker's interest, when withChannels is set.
func (r *registry) remove(c *Conn, withChannels bool) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns[c.id] != c {
		return nil
	}
	r.releaseLocked(c.userID)
	var names []string
	if withChannels {
		names = make([]string, 0, len(c.subs))
	}
	for name := range c.subs {
		r.unsubscribeLocked(c, name)
		if withChannels {
			names = append(names, name)
		}
	}
	c.subs = nil
	delete(r.conns, c.id)
	if set := r.users[c.userID]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(r.users, c.userID)
		}
	}
	r.all.Store(nil)
	return names
}

// interested reports whether this node wants the broker messages of name: a channel
// with local subscribers, a user with a connection (or a handshake under way), and
// broadcasts always.
func (r *registry) interested(name string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	switch {
	case name == brokerBroadcast:
		return true
	case strings.HasPrefix(name, brokerUserPrefix): // from the slot: before the upgrade
		return r.userSlots[name[len(brokerUserPrefix):]] > 0
	}
	return r.channels[name] != nil
}

// subscribe puts c on channel name. It fails with ErrConnNotFound for a connection that
// has left and with ErrTooManySubscriptions at the per-connection limit. Subscribing
// twice is a no-op.
func (r *registry) subscribe(c *Conn, name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns[c.id] != c {
		return ErrConnNotFound
	}
	if _, ok := c.subs[name]; ok {
		return nil
	}
	if r.limits.subsPerConn > 0 && len(c.subs) >= r.limits.subsPerConn {
		return ErrTooManySubscriptions
	}
	ch := r.channels[name]
	if ch == nil {
		ch = &channel{subs: make(map[*Conn]struct{})}
		r.channels[name] = ch
	}
	ch.subs[c] = struct{}{}
	ch.snap.Store(nil)
	if c.subs == nil {
		c.subs = make(map[string]struct{})
	}
	c.subs[name] = struct{}{}
	r.subscriptions++
	return nil
}

// unsubscribe takes c off channel name; it is a no-op if c was not on it.
func (r *registry) unsubscribe(c *Conn, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := c.subs[name]; ok {
		r.unsubscribeLocked(c, name)
		delete(c.subs, name)
	}
}

// unsubscribeLocked removes c from the channel's set; the caller updates c.subs.
func (r *registry) unsubscribeLocked(c *Conn, name string) {
	ch := r.channels[name]
	if ch == nil {
		return
	}
	delete(ch.subs, c)
	r.subscriptions--
	if len(ch.subs) == 0 {
		delete(r.channels, name)
		return
	}
	ch.snap.Store(nil)
}

// subscribers returns a snapshot of the channel's subscribers. The slice is shared and
// must not be modified.
func (r *registry) subscribers(name string) []*Conn {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ch := r.channels[name]
	if ch == nil {
		return nil
	}
	if p := ch.snap.Load(); p != nil {
		return *p
	}
	s := make([]*Conn, 0, len(ch.subs))
	for c := range ch.subs {
		s = append(s, c)
	}
	// Readers holding mu.RLock may build concurrently; any of their results is current,
	// because writers, who make a snapshot stale, wait for every reader.
	ch.snap.Store(&s)
	return s
}

// allConns returns a snapshot of every registered connection.
func (r *registry) allConns() []*Conn {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if p := r.all.Load(); p != nil {
		return *p
	}
	s := make([]*Conn, 0, len(r.conns))
	for _, c := range r.conns {
		s = append(s, c)
	}
	r.all.Store(&s)
	return s
}

// userConns returns the connections of one user.
func (r *registry) userConns(userID string) []*Conn {
	r.mu.RLock()
	defer r.mu.RUnlock()
	set := r.users[userID]
	s := make([]*Conn, 0, len(set))
	for c := range set {
		s = append(s, c)
	}
	return s
}

// conn returns the connection with the given ID, or nil.
func (r *registry) conn(id string) *Conn {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.conns[id]
}

// channelsOf returns the channels c is subscribed to.
func (r *registry) channelsOf(c *Conn) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s := make([]string, 0, len(c.subs))
	for name := range c.subs {
		s = append(s, name)
	}
	return s
}

// counts returns the gauges Stats reports.
func (r *registry) counts() (conns, channels, subscriptions, users int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.conns), len(r.channels), r.subscriptions, len(r.users)
}
