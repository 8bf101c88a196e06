package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wspub/wspub"
	"github.com/wspub/wspub/internal/wstest"
)

// delivery is one call of deliver.
type delivery struct {
	channel string
	payload string
}

// recorder is a deliver function that keeps what it is given.
type recorder struct {
	mu     sync.Mutex
	got    []delivery
	closed bool // set by the test after the Broker's Close: deliver must not run then
	t      testing.TB
}

func (r *recorder) deliver(channel string, payload []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		r.t.Errorf("deliver(%q) after Close returned", channel)
	}
	r.got = append(r.got, delivery{channel, string(payload)})
}

func (r *recorder) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// TestBrokerLifecycle drives a Broker directly: Subscribe confirms, deliveries carry the
// channel name back, Unsubscribe stops them, Close stops everything without closing the
// connection, and every call after Close fails with ErrClosed.
func TestBrokerLifecycle(t *testing.T) {
	url := natsURL(t)
	nc, other := connect(t, url), connect(t, url)
	prefix := testPrefix(t)
	b, err := New(nc, &Options{Prefix: prefix})
	require.NoError(t, err)
	rec := &recorder{t: t}
	require.NoError(t, b.Start(rec.deliver))
	assert.Error(t, b.Start(rec.deliver), "Start twice")
	assert.True(t, b.Up())
	assert.Zero(t, b.Outages())

	const name = "room.*> ü"
	base := nc.NumSubscriptions()
	require.NoError(t, b.Subscribe(context.Background(), name), "no deadline: Options.Timeout bounds it")
	require.NoError(t, b.Subscribe(context.Background(), name), "idempotent")
	assert.Equal(t, base+1, nc.NumSubscriptions())
	subject, err := b.subject(name)
	require.NoError(t, err)
	// Subscribe has returned: the server knows, so a message from another connection arrives.
	require.NoError(t, other.Publish(subject, []byte("one")))
	require.NoError(t, b.Publish(context.Background(), name, []byte("two")), "its own messages come back too")
	eventually(t, func() bool { return len(rec.deliveries()) == 2 })
	assert.ElementsMatch(t, []delivery{{name, "one"}, {name, "two"}}, rec.deliveries())

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	require.NoError(t, b.Unsubscribe(ctx, name))
	require.NoError(t, b.Unsubscribe(ctx, name), "idempotent")
	assert.Equal(t, base, nc.NumSubscriptions())
	require.NoError(t, other.Publish(subject, []byte("three")))
	require.NoError(t, b.Subscribe(ctx, "fence"))
	require.NoError(t, b.Publish(ctx, "fence", nil))
	eventually(t, func() bool { return len(rec.deliveries()) == 3 })
	assert.Equal(t, delivery{"fence", ""}, rec.deliveries()[2], "nothing of the unsubscribed channel")

	assert.ErrorIs(t, b.Subscribe(ctx, ""), ErrInvalidName)
	assert.ErrorIs(t, b.Publish(ctx, strings.Repeat("x", 3000), nil), ErrInvalidName)

	require.NoError(t, b.Subscribe(ctx, "left open"))
	require.NoError(t, b.Close())
	rec.mu.Lock()
	rec.closed = true
	rec.mu.Unlock()
	require.NoError(t, b.Close(), "Close twice")
	assert.Equal(t, base, nc.NumSubscriptions(), "Close ends every subscription")
	assert.True(t, nc.IsConnected(), "the connection stays the caller's")
	assert.False(t, b.Up())
	assert.ErrorIs(t, b.Publish(ctx, "fence", nil), ErrClosed)
	assert.ErrorIs(t, b.Subscribe(ctx, "fence"), ErrClosed)
	assert.ErrorIs(t, b.Start(rec.deliver), ErrClosed)
	require.NoError(t, other.Publish(subject, []byte("late")))
	require.NoError(t, other.Flush())
}

// TestDropsCounted: when the hub cannot keep up, NATS drops what does not fit in the
// queue; every message is either delivered or counted, and the drops are logged.
func TestDropsCounted(t *testing.T) {
	url := natsURL(t)
	nc, other := connect(t, url), connect(t, url)
	logger, logs := wstest.NewLogger()
	b, err := New(nc, &Options{Prefix: testPrefix(t), BufferSize: 4, Logger: logger})
	require.NoError(t, err)
	release := make(chan struct{})
	var mu sync.Mutex
	var delivered []string
	require.NoError(t, b.Start(func(_ string, p []byte) {
		<-release // a hub far behind (a real one never blocks here)
		mu.Lock()
		delivered = append(delivered, string(p))
		mu.Unlock()
	}))
	t.Cleanup(func() { _ = b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	require.NoError(t, b.Subscribe(ctx, "flood"))
	subject, err := b.subject("flood")
	require.NoError(t, err)
	const n = 100
	for i := range n {
		require.NoError(t, other.Publish(subject, []byte(fmt.Sprint(i))))
	}
	require.NoError(t, other.FlushWithContext(ctx))
	eventually(t, func() bool { return b.Dropped() >= n-6 }, "at most the queue and the one in deliver are kept")
	close(release)
	eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return uint64(len(delivered))+b.Dropped() == n
	}, "every message is delivered or counted")
	mu.Lock()
	assert.Equal(t, "0", delivered[0], "the oldest are kept, in order")
	for i := 1; i < len(delivered); i++ {
		prev, err1 := strconv.Atoi(delivered[i-1])
		cur, err2 := strconv.Atoi(delivered[i])
		require.NoError(t, errors.Join(err1, err2))
		assert.Less(t, prev, cur, "order")
	}
	mu.Unlock()
	eventually(t, func() bool { return len(logs.Events("nats_broker_dropped")) == 1 })
	e := logs.Events("nats_broker_dropped")[0]
	assert.Equal(t, b.Dropped(), e["total"])

	dropped := b.Dropped()
	require.NoError(t, b.Unsubscribe(ctx, "flood"))
	assert.Equal(t, dropped, b.Dropped(), "the drops of an ended subscription are kept")
}

// TestMultiNodeExactlyOnce: three nodes, two clients on each; ~500 messages published
// concurrently on every node reach every client exactly once, in order per publishing
// node.
func TestMultiNodeExactlyOnce(t *testing.T) {
	nodes := startNodes(t, natsURL(t), 3, wspub.Options{})
	var clients []*wstest.Conn
	for _, n := range nodes {
		for range 2 {
			c := dial(t, n.url)
			c.Subscribe("news", "s")
			clients = append(clients, c)
		}
	}
	const perNode = 500
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perNode {
				if err := n.hub.Publish(context.Background(), "news", wspub.Message{Type: "m", Data: fmt.Sprintf("%d-%d", i, j)}); err != nil {
					t.Errorf("node %d: %v", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for ci, c := range clients {
		next := make([]int, len(nodes))
		for range perNode * len(nodes) {
			var from, j int
			_, err := fmt.Sscanf(wstest.Data[string](t, c.Expect("m")), "%d-%d", &from, &j)
			require.NoError(t, err)
			require.Equal(t, next[from], j, "client %d: messages of node %d out of order", ci, from)
			next[from]++
		}
		c.NothingPending("no-duplicate")
	}
	for i, n := range nodes {
		st := n.hub.Stats()
		assert.True(t, st.BrokerUp, "node %d", i)
		assert.Equal(t, uint64(2*perNode), st.BrokerReceived, "node %d receives the other nodes' messages, once", i)
		assert.Zero(t, st.BrokerErrors, "node %d", i)
		assert.Zero(t, st.BrokerOutages, "node %d", i)
		assert.Zero(t, n.broker.Dropped(), "node %d", i)
	}
}

// TestInterestFollowsSubscribers: a node has one NATS subscription per channel with
// local subscribers, and the last local unsubscribe ends it at the server: the node's
// connection receives nothing of the channel any more.
func TestInterestFollowsSubscribers(t *testing.T) {
	nodes := startNodes(t, natsURL(t), 2, wspub.Options{})
	a, b := nodes[0], nodes[1]
	base, baseNC := b.broker.subscriptions(), b.nc.NumSubscriptions()
	assert.True(t, b.broker.subscribed("wspub broadcast"), "the hub always listens to broadcasts")
	c1, c2 := dial(t, b.url), dial(t, b.url)
	c1.Subscribe("room", "s")
	c2.Subscribe("room", "s")
	c1.Subscribe("fence", "s")
	assert.Equal(t, base+2, b.broker.subscriptions(), "one subscription per channel, not per client")
	assert.Equal(t, baseNC+2, b.nc.NumSubscriptions())

	ctx := context.Background()
	require.NoError(t, a.hub.Publish(ctx, "room", wspub.Message{Type: "hello"}))
	c1.Expect("hello")
	c2.Expect("hello")

	c1.Unsubscribe("room", "u")
	assert.True(t, b.broker.subscribed("room"), "c2 is still there")
	require.NoError(t, a.hub.Publish(ctx, "room", wspub.Message{Type: "still"}))
	c2.Expect("still")
	c2.Unsubscribe("room", "u")
	assert.False(t, b.broker.subscribed("room"))
	assert.Equal(t, base+1, b.broker.subscriptions())
	assert.Equal(t, baseNC+1, b.nc.NumSubscriptions())

	received, inMsgs := b.hub.Stats().BrokerReceived, b.nc.Stats().InMsgs
	require.NoError(t, a.hub.Publish(ctx, "room", wspub.Message{Type: "gone"}))
	require.NoError(t, a.hub.Publish(ctx, "fence", wspub.Message{Type: "fence"}))
	c1.Expect("fence") // published after "room" on the same connection: "room" would be here by now
	assert.Equal(t, received+1, b.hub.Stats().BrokerReceived, "only the fence reached node B")
	assert.Equal(t, inMsgs+1, b.nc.Stats().InMsgs, "the server no longer sends the channel to node B")
	c1.NothingPending("x")
	c2.NothingPending("y")
}

// TestMultiNodeUsersAndBroadcast: SendToUser reaches the user's connections on other
// nodes, Broadcast reaches every connection of every node, each once; a user's last
// connection ends the node's subscription for them.
func TestMultiNodeUsersAndBroadcast(t *testing.T) {
	nodes := startNodes(t, natsURL(t), 3, wspub.Options{Authenticate: userFromQuery})
	alice1 := dial(t, nodes[1].url+"?user=alice")
	alice2 := dial(t, nodes[2].url+"?user=alice")
	bob := dial(t, nodes[0].url+"?user=bob")
	ctx := context.Background()
	// No waiting: once its handshake is done, a user is reachable from every node.
	require.NoError(t, nodes[0].hub.SendToUser(ctx, "alice", wspub.Message{Type: "note", Data: "for alice"}))
	for _, c := range []*wstest.Conn{alice1, alice2} {
		e := c.Expect("note")
		assert.Equal(t, "for alice", wstest.Data[string](t, e))
		assert.Empty(t, e.Channel)
	}
	require.NoError(t, nodes[2].hub.Broadcast(ctx, wspub.Message{Type: "all"}))
	for i, c := range []*wstest.Conn{alice1, alice2, bob} {
		c.Expect("all")
		c.NothingPending(fmt.Sprint("once-", i))
	}

	assert.True(t, nodes[1].broker.subscribed("wspub user alice"))
	assert.False(t, nodes[0].broker.subscribed("wspub user alice"))
	require.NoError(t, alice1.WS.CloseNow())
	require.NoError(t, alice2.WS.CloseNow())
	for _, n := range nodes[1:] {
		eventually(t, func() bool { return !n.broker.subscribed("wspub user alice") },
			"the last connection of a user ends its subscription")
	}
	assert.True(t, nodes[0].broker.subscribed("wspub user bob"))
}

// TestChannelNamesEndToEnd: names with the characters NATS gives a meaning to ('.', '*',
// '>') and any Unicode cross nodes as themselves, and a wildcard-looking name matches
// only itself.
func TestChannelNamesEndToEnd(t *testing.T) {
	nodes := startNodes(t, natsURL(t), 2, wspub.Options{})
	a, b := nodes[0], nodes[1]
	names := []string{
		"a.b", "*", ">", "a.*", "news.>", "*.>", ".", "чат", "🎉.*.>", "x=y/z?&#%+",
		strings.Repeat("界", 66) + "ab", // 200 bytes, the default MaxChannelBytes
	}
	all, star := dial(t, b.url), dial(t, b.url)
	for _, name := range names {
		all.Subscribe(name, "s")
	}
	star.Subscribe("*", "s")
	ctx := context.Background()
	for _, name := range names {
		require.NoError(t, a.hub.Publish(ctx, name, wspub.Message{Type: "m", Data: name}))
	}
	for _, name := range names {
		e := all.Expect("m")
		assert.Equal(t, name, e.Channel)
		assert.Equal(t, name, wstest.Data[string](t, e))
	}
	all.NothingPending("all")
	e := star.Expect("m")
	assert.Equal(t, "*", e.Channel)
	star.NothingPending("star")
	assert.Equal(t, uint64(len(names)), b.hub.Stats().BrokerReceived)
}

// TestPublishWhileClosedConn: a connection the application closed is down for good:
// Publish and Subscribe fail at once, and the Broker reports it.
func TestPublishWhileClosedConn(t *testing.T) {
	url := natsURL(t)
	nc := connect(t, url)
	logger, logs := wstest.NewLogger()
	b, err := New(nc, &Options{Prefix: testPrefix(t), Logger: logger})
	require.NoError(t, err)
	require.NoError(t, b.Start(func(string, []byte) {}))
	require.NoError(t, b.Subscribe(context.Background(), "c"))
	nc.Close()
	eventually(t, func() bool { return !b.Up() }, "the Broker learns it from the status events")
	assert.ErrorIs(t, b.Publish(context.Background(), "c", []byte("x")), ErrDown)
	assert.ErrorIs(t, b.Subscribe(context.Background(), "d"), nats.ErrConnectionClosed)
	eventually(t, func() bool { return b.Outages() == 1 })
	eventually(t, func() bool { return len(logs.Events("nats_broker_down")) == 1 })
	assert.Equal(t, "CLOSED", logs.Events("nats_broker_down")[0]["status"])
	require.NoError(t, b.Close(), "nothing left to end on a closed connection")
}
