package wspub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wspub/wspub/internal/wstest"
)

// startNodes starts n hubs sharing a MemoryBus, each on its own httptest server.
func startNodes(t *testing.T, n int, opts Options) (*MemoryBus, []*Hub, []string) {
	t.Helper()
	bus := NewMemoryBus()
	hubs, urls := make([]*Hub, n), make([]string, n)
	for i := range n {
		o := opts
		o.Broker = bus.Broker()
		hubs[i], urls[i] = startHub(t, &o)
	}
	return bus, hubs, urls
}

// TestMultiNodeExactlyOnce: a Publish on any node reaches every subscriber on every node
// exactly once, in order; the publishing node's own subscribers are not served twice
// (in memory here; the adapters test it against real brokers).
func TestMultiNodeExactlyOnce(t *testing.T) {
	_, hubs, urls := startNodes(t, 3, Options{})
	var clients []*wstest.Conn
	for _, url := range urls {
		for range 2 {
			c := dial(t, url)
			c.Subscribe("news", "s")
			clients = append(clients, c)
		}
	}
	ctx := context.Background()
	const perNode = 200
	for i := range perNode {
		for n, h := range hubs {
			require.NoError(t, h.Publish(ctx, "news", Message{Type: "m", Data: fmt.Sprintf("%d-%d", n, i)}))
		}
	}
	for _, c := range clients {
		next := make([]int, len(hubs)) // order per publishing node
		for range perNode * len(hubs) {
			var n, i int
			var s string
			require.NoError(t, json.Unmarshal(c.Expect("m").Data, &s))
			_, err := fmt.Sscanf(s, "%d-%d", &n, &i)
			require.NoError(t, err)
			require.Equal(t, next[n], i, "messages of node %d out of order", n)
			next[n]++
		}
		c.RoundTrip("nothing-more") // no duplicate arrives before the pong
	}
	for _, h := range hubs {
		st := h.Stats()
		assert.True(t, st.BrokerUp)
		assert.Equal(t, uint64(2*perNode), st.BrokerReceived, "each node receives the other two nodes' messages")
		assert.Zero(t, st.BrokerErrors)
	}
}

// TestMultiNodeUsersAndBroadcast: SendToUser and Broadcast cross nodes.
func TestMultiNodeUsersAndBroadcast(t *testing.T) {
	bus, hubs, urls := startNodes(t, 3, Options{Authenticate: userFromQuery})
	alice := dial(t, urls[1]+"?user=alice")
	alice2 := dial(t, urls[2]+"?user=alice")
	bob := dial(t, urls[0]+"?user=bob")
	// A connection is registered just after its handshake: wait for that, not for the
	// broker, whose user subscription is taken before the handshake completes.
	eventually(t, func() bool {
		return hubs[0].Stats().Connections == 1 && hubs[1].Stats().Connections == 1 && hubs[2].Stats().Connections == 1
	})
	assert.True(t, bus.Subscribed(brokerUserPrefix+"alice"))
	ctx := context.Background()
	require.NoError(t, hubs[0].SendToUser(ctx, "alice", Message{Type: "note", Data: "for alice"}))
	for _, c := range []*wstest.Conn{alice, alice2} {
		assert.Equal(t, wstest.Msg{Type: "note", Data: json.RawMessage(`"for alice"`)}, c.Next())
	}
	require.NoError(t, hubs[2].Broadcast(ctx, Message{Type: "all"}))
	for i, c := range []*wstest.Conn{alice, alice2, bob} {
		assert.Equal(t, wstest.Msg{Type: "all"}, c.Next(), "client %d", i)
		c.RoundTrip("once")
	}
	require.NoError(t, alice.WS.CloseNow())
	require.NoError(t, alice2.WS.CloseNow())
	eventually(t, func() bool { return !bus.Subscribed(brokerUserPrefix + "alice") },
		"the last connection of a user ends its broker subscription")
	assert.True(t, bus.Subscribed(brokerUserPrefix+"bob"))
}

// TestBrokerInterestFollowsSubscribers: a node subscribes at the broker while it has
// local subscribers, and unsubscribes when the last one leaves, also under churn.
func TestBrokerInterestFollowsSubscribers(t *testing.T) {
	bus, hubs, urls := startNodes(t, 2, Options{MessageRate: -1})
	c := dial(t, urls[1])
	assert.False(t, bus.Subscribed("room"))
	c.Subscribe("room", "s") // the ack comes after the broker subscription
	assert.True(t, bus.Subscribed("room"))
	require.NoError(t, hubs[0].Publish(context.Background(), "room", Message{Type: "hello"}))
	c.Expect("hello")
	c.SendText(`{"type":"unsubscribe","channel":"room"}`)
	c.Expect("unsubscribed")
	assert.False(t, bus.Subscribed("room"))

	// Churn: many connections subscribe and unsubscribe the same channels concurrently.
	var wg sync.WaitGroup
	for g := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := dial(t, urls[1])
			for i := range 50 {
				op := "subscribe"
				if i%2 == 1 {
					op = "unsubscribe"
				}
				cl.SendText(fmt.Sprintf(`{"type":%q,"channel":"churn:%d"}`, op, (g+i/2)%3))
			}
			cl.RoundTrip("done")
			if g%2 == 0 {
				cl.Subscribe("kept", "s") // some stay subscribed
			}
		}()
	}
	wg.Wait()
	for i := range 3 {
		assert.False(t, bus.Subscribed(fmt.Sprint("churn:", i)), "churn:%d leaked a broker subscription", i)
	}
	assert.True(t, bus.Subscribed("kept"), "the node is not deaf")
	require.NoError(t, hubs[0].Publish(context.Background(), "kept", Message{Type: "k"}))
	eventually(t, func() bool { return hubs[1].Stats().BrokerReceived >= 2 })
}

// stuckBroker is a Broker whose network is gone: Publish hangs until its context ends and
// Subscribe fails.
type stuckBroker struct {
	mu       sync.Mutex
	started  bool
	closed   bool
	publishN int
}

func (b *stuckBroker) Start(func(string, []byte)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.started = true
	return nil
}

func (b *stuckBroker) Publish(ctx context.Context, _ string, _ []byte) error {
	b.mu.Lock()
	b.publishN++
	b.mu.Unlock()
	<-ctx.Done()
	return ctx.Err()
}

func (b *stuckBroker) Subscribe(context.Context, string) error {
	return errors.New("connection refused")
}
func (b *stuckBroker) Unsubscribe(context.Context, string) error {
	return errors.New("connection refused")
}
func (b *stuckBroker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

// TestBrokerDownAtPublish: with the broker unreachable, Publish returns ErrBroker within
// BrokerTimeout even with a context without deadline, and this node's subscribers still
// get the message.
func TestBrokerDownAtPublish(t *testing.T) {
	logger, logs := wstest.NewLogger()
	b := &stuckBroker{}
	h, url := startHub(t, &Options{Logger: logger, Broker: b, BrokerTimeout: 200 * time.Millisecond})
	c := dial(t, url)
	c.Subscribe("local", "s") // the broker subscribe fails, the local one stands
	start := time.Now()
	err := h.Publish(context.Background(), "local", Message{Type: "m"})
	assert.ErrorIs(t, err, ErrBroker)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 2*time.Second)
	c.Expect("m")

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	assert.ErrorIs(t, h.Publish(ctx, "local", Message{Type: "m"}), ErrBroker)
	assert.Less(t, time.Since(start), 190*time.Millisecond, "the caller's deadline bounds it too")
	c.Expect("m")

	st := h.Stats()
	assert.Equal(t, uint64(4), st.BrokerErrors, "broadcast subscribe, channel subscribe, two publishes")
	assert.True(t, st.BrokerUp, "a broker without BrokerHealth is assumed up")
	assert.Len(t, logs.Events("wspub_broker_error"), 1, "an outage is logged once, not per operation")
	require.NoError(t, h.Close())
	b.mu.Lock()
	assert.True(t, b.started && b.closed, "the hub starts and closes its broker")
	b.mu.Unlock()
}

// TestBrokerPayloadValidation: payloads that are not wspub's are counted and dropped.
func TestBrokerPayloadValidation(t *testing.T) {
	bus, hubs, urls := startNodes(t, 1, Options{})
	c := dial(t, urls[0])
	c.Subscribe("x", "s")
	other := bus.Broker()
	require.NoError(t, other.Start(func(string, []byte) {}))
	defer other.Close()
	for _, p := range []string{"", "\x01", "\x02123456789{}", "not wspub at all"} {
		require.NoError(t, other.Publish(context.Background(), "x", []byte(p)))
	}
	assert.Equal(t, uint64(4), hubs[0].Stats().BrokerInvalid)
	c.RoundTrip("nothing delivered")
}

// TestMultiNodeClientPublish: a client publish crosses nodes too.
func TestMultiNodeClientPublish(t *testing.T) {
	_, _, urls := startNodes(t, 2, Options{AllowClientPublish: true})
	a, b := dial(t, urls[0]), dial(t, urls[1])
	b.Subscribe("chat", "s")
	a.SendText(`{"type":"publish","channel":"chat","data":"hi","id":"1"}`)
	a.Expect("published")
	assert.Equal(t, wstest.Msg{Type: "publish", Channel: "chat", Data: json.RawMessage(`"hi"`)}, b.Next())
}
