package redisbroker_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wspub/wspub/internal/wstest"
	"github.com/wspub/wspub/redisbroker"
)

type delivery struct {
	channel string
	payload []byte
}

// startBroker starts a Broker on a client of its own; cleanup closes both.
func startBroker(t testing.TB, addr string, opts redisbroker.Options, deliver func(string, []byte)) *redisbroker.Broker {
	t.Helper()
	b := redisbroker.New(newClient(t, addr), &opts)
	require.NoError(t, b.Start(deliver))
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func receive(t testing.TB, got <-chan delivery) delivery {
	t.Helper()
	select {
	case d := <-got:
		return d
	case <-time.After(10 * time.Second):
		require.FailNow(t, "nothing delivered within 10s")
		return delivery{}
	}
}

// TestBrokerChannelsAndPayloads: Subscribe returns once Redis has the subscription, and
// Unsubscribe once it is gone (PUBSUB NUMSUB, asked right after, agrees). Channel names
// are raw: spaces (the hub's own channels have some), Redis glob characters, ':' and
// any byte; payloads arrive byte for byte. With RESP2 and RESP3 alike, whose replies in
// subscribed mode differ.
func TestBrokerChannelsAndPayloads(t *testing.T) {
	addr := needRedis(t)
	for _, protocol := range []int{2, 3} {
		t.Run(fmt.Sprint("RESP", protocol), func(t *testing.T) { testChannelsAndPayloads(t, addr, protocol) })
	}
}

func testChannelsAndPayloads(t *testing.T, addr string, protocol int) {
	prefix := uniquePrefix(t)
	admin := newClient(t, addr)
	got := make(chan delivery, 64)
	logger, logs := wstest.NewLogger()
	start := func(opts redisbroker.Options, deliver func(string, []byte)) *redisbroker.Broker {
		rdb := redis.NewClient(&redis.Options{Addr: addr, Protocol: protocol})
		t.Cleanup(func() { _ = rdb.Close() })
		b := redisbroker.New(rdb, &opts)
		require.NoError(t, b.Start(deliver))
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	sub := start(redisbroker.Options{Prefix: prefix, Logger: logger}, func(ch string, p []byte) {
		got <- delivery{ch, p}
	})
	pub := start(redisbroker.Options{Prefix: prefix}, func(string, []byte) {})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	names := []string{"with space", "wspub user Bob Smith", "*", "a:*:[b]", "ü", "nul\x00byte"}
	for _, name := range names {
		require.NoError(t, sub.Subscribe(ctx, name))
		assert.Equal(t, int64(1), adminNumSub(t, admin, prefix+name), "%q: confirmed means subscribed", name)
	}
	payload := []byte("\x00\x01\n\xff binary \r\n")
	for _, name := range names {
		require.NoError(t, pub.Publish(ctx, name, payload))
	}
	for _, name := range names {
		assert.Equal(t, delivery{name, payload}, receive(t, got))
	}
	// A glob-like channel is no pattern: "a:x:b" does not reach "a:*:[b]".
	require.NoError(t, pub.Publish(ctx, "a:x:b", payload))
	require.NoError(t, pub.Publish(ctx, "*", []byte("marker")))
	assert.Equal(t, delivery{"*", []byte("marker")}, receive(t, got))

	for _, name := range names {
		require.NoError(t, sub.Unsubscribe(ctx, name))
		assert.Zero(t, adminNumSub(t, admin, prefix+name), "%q: confirmed means unsubscribed", name)
	}
	eventually(t, sub.Up)
	assert.Zero(t, sub.Outages())
	ups := logs.Events("redis_broker_up")
	require.Len(t, ups, 1)
	assert.Empty(t, logs.Events("redis_broker_down"))
}

// TestBrokerResubscribeAfterConnectionKill: when Redis drops the subscription connection
// (CLIENT KILL), the broker notices at once, counts an outage, reconnects and subscribes
// to every recorded channel again, without any call from the hub.
func TestBrokerResubscribeAfterConnectionKill(t *testing.T) {
	addr := needRedis(t)
	prefix := uniquePrefix(t)
	admin := newClient(t, addr)
	name := "wspubtest-" + strings.Trim(prefix[len("wspubtest:"):], ":")
	rdb := redis.NewClient(&redis.Options{Addr: addr, ClientName: name}) // to find its connection
	t.Cleanup(func() { _ = rdb.Close() })
	got := make(chan delivery, 64)
	logger, logs := wstest.NewLogger()
	b := redisbroker.New(rdb, &redisbroker.Options{
		Prefix: prefix, Logger: logger, ReconnectMin: 10 * time.Millisecond, ReconnectMax: 100 * time.Millisecond,
	})
	require.NoError(t, b.Start(func(ch string, p []byte) { got <- delivery{ch, p} }))
	t.Cleanup(func() { _ = b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for i := range 3 {
		require.NoError(t, b.Subscribe(ctx, "ch"+strconv.Itoa(i)))
	}
	require.NoError(t, b.Unsubscribe(ctx, "ch1")) // recorded as gone: not subscribed again
	eventually(t, b.Up)

	killClient(t, admin, name) // only this test's connection: other runs may share the server
	eventually(t, func() bool { return b.Outages() == 1 && b.Up() }, "outage noticed, then reconnected")
	// Up means the reconnection has been answered, after go-redis's SUBSCRIBE: no polling.
	assert.Equal(t, int64(1), adminNumSub(t, admin, prefix+"ch0"))
	assert.Equal(t, int64(1), adminNumSub(t, admin, prefix+"ch2"))
	assert.Zero(t, adminNumSub(t, admin, prefix+"ch1"))

	require.NoError(t, admin.Publish(ctx, prefix+"ch2", "after").Err())
	assert.Equal(t, delivery{"ch2", []byte("after")}, receive(t, got))
	downs, ups := logs.Events("redis_broker_down"), logs.Events("redis_broker_up")
	require.Len(t, downs, 1, "logged once per transition")
	assert.NotEmpty(t, downs[0]["error"])
	require.Len(t, ups, 2, "the first connection and the reconnection")
	assert.Equal(t, int64(2), ups[1]["channels"], "ch0 and ch2 subscribed again")
}

// killClient closes the pub/sub connections of the clients named name (CLIENT SETNAME).
func killClient(t testing.TB, admin *redis.Client, name string) {
	t.Helper()
	ctx := context.Background()
	list, err := admin.Do(ctx, "CLIENT", "LIST", "TYPE", "pubsub").Text()
	require.NoError(t, err)
	killed := 0
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		var id string
		named := false
		for _, field := range strings.Fields(line) {
			k, v, _ := strings.Cut(field, "=")
			switch {
			case k == "id":
				id = v
			case k == "name" && v == name:
				named = true
			}
		}
		if named {
			require.NoError(t, admin.Do(ctx, "CLIENT", "KILL", "ID", id).Err(), "kill %s", id)
			killed++
		}
	}
	require.Positive(t, killed, fmt.Sprintf("no pub/sub connection named %s in\n%s", name, list))
}

// TestBrokerClose: deliver is not called after Close returns, even while messages keep
// coming; Close is idempotent, leaves the client open, and every later call fails with
// ErrClosed.
func TestBrokerClose(t *testing.T) {
	addr := needRedis(t)
	prefix := uniquePrefix(t)
	admin := newClient(t, addr)
	rdb := newClient(t, addr)
	var closed atomic.Bool
	var delivered, late atomic.Int64
	b := redisbroker.New(rdb, &redisbroker.Options{Prefix: prefix})
	require.NoError(t, b.Start(func(string, []byte) {
		if closed.Load() {
			late.Add(1)
		}
		delivered.Add(1)
	}))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	require.NoError(t, b.Subscribe(ctx, "x"))

	var published atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // keeps publishing until told to stop
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if admin.Publish(ctx, prefix+"x", "m").Err() == nil {
				published.Add(1)
			}
		}
	}()
	eventually(t, func() bool { return delivered.Load() >= 20 })
	require.NoError(t, b.Close())
	closed.Store(true)
	atClose := published.Load()
	eventually(t, func() bool { return published.Load() >= atClose+50 }, "publishing goes on after Close")
	close(stop)
	wg.Wait()
	assert.Zero(t, late.Load(), "deliver called after Close returned")

	assert.False(t, b.Up())
	assert.NoError(t, b.Close(), "a second Close")
	assert.ErrorIs(t, b.Subscribe(ctx, "y"), redisbroker.ErrClosed)
	assert.ErrorIs(t, b.Unsubscribe(ctx, "x"), redisbroker.ErrClosed)
	assert.ErrorIs(t, b.Publish(ctx, "x", []byte("p")), redisbroker.ErrClosed)
	assert.ErrorIs(t, b.Start(func(string, []byte) {}), redisbroker.ErrClosed)
	assert.NoError(t, rdb.Ping(ctx).Err(), "Close leaves the client open")
	eventually(t, func() bool { return adminNumSub(t, admin, prefix+"x") == 0 }, "the subscription connection is closed")
}

// TestBrokerUnreachable: with nothing listening at the address, the broker is down
// (logged once, no outage counted: it was never up), retries with a capped backoff
// instead of spinning, and Subscribe, Publish and Close return promptly. It needs no
// Redis.
func TestBrokerUnreachable(t *testing.T) {
	var mu sync.Mutex
	var dials []time.Time
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(wstest.FreePort(t)))
	rdb := redis.NewClient(&redis.Options{Addr: addr, Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		dials = append(dials, time.Now())
		mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}})
	t.Cleanup(func() { _ = rdb.Close() })
	logger, logs := wstest.NewLogger()
	const maxWait = 50 * time.Millisecond
	b := redisbroker.New(rdb, &redisbroker.Options{Logger: logger, ReconnectMin: 5 * time.Millisecond, ReconnectMax: maxWait})
	require.NoError(t, b.Start(func(string, []byte) {}))
	t.Cleanup(func() { _ = b.Close() })

	eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(dials) >= 10
	})
	mu.Lock()
	gap := dials[9].Sub(dials[8])
	mu.Unlock()
	assert.GreaterOrEqual(t, gap, maxWait/2-5*time.Millisecond, "reconnection attempts are paced")
	assert.False(t, b.Up())
	assert.Zero(t, b.Outages(), "never up: no outage")
	downs := logs.Events("redis_broker_down")
	require.Len(t, downs, 1, "logged once, not per attempt")
	assert.Contains(t, downs[0]["error"], "refused")

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	assert.Error(t, b.Subscribe(ctx, "x"))
	assert.Error(t, b.Publish(ctx, "x", []byte("p")))
	assert.Less(t, time.Since(start), time.Second)
	start = time.Now()
	require.NoError(t, b.Close())
	assert.Less(t, time.Since(start), time.Second)
}

// TestBrokerNotStarted: Subscribe and Unsubscribe fail before Start, calls fail after
// Close, and a Broker without a client fails instead of panicking. It needs no Redis.
func TestBrokerNotStarted(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	b := redisbroker.New(rdb, nil)
	assert.Error(t, b.Subscribe(ctx, "x"))
	assert.Error(t, b.Unsubscribe(ctx, "x"))
	assert.Error(t, b.Start(nil))
	assert.False(t, b.Up())
	assert.NoError(t, b.Close())
	assert.ErrorIs(t, b.Subscribe(ctx, "x"), redisbroker.ErrClosed)

	nilClient := redisbroker.New(nil, nil)
	assert.Error(t, nilClient.Start(func(string, []byte) {}))
	assert.Error(t, nilClient.Publish(ctx, "x", nil))
	assert.NoError(t, nilClient.Close())
}

// TestBrokerChangesBeforeStart: the changes asked for before Start are carried out once
// started.
func TestBrokerChangesBeforeStart(t *testing.T) {
	ctx := context.Background()
	addr := needRedis(t)
	prefix := uniquePrefix(t)
	admin := newClient(t, addr)
	early := redisbroker.New(newClient(t, addr), &redisbroker.Options{Prefix: prefix})
	assert.Error(t, early.Subscribe(ctx, "a"))
	assert.Error(t, early.Subscribe(ctx, "b"))
	assert.Error(t, early.Unsubscribe(ctx, "b"))
	require.NoError(t, early.Start(func(string, []byte) {}))
	t.Cleanup(func() { _ = early.Close() })
	eventually(t, func() bool { return adminNumSub(t, admin, prefix+"a") == 1 }, "subscribed once started")
	assert.Zero(t, adminNumSub(t, admin, prefix+"b"))
}

// TestBrokerHalfOpenConnection: when the subscription connection stops carrying data
// without being closed (a network partition), the health check notices within about two
// HealthCheckIntervals even though nothing is published, counts an outage and replaces
// the connection; once the network is back, the subscriptions are made again.
func TestBrokerHalfOpenConnection(t *testing.T) {
	addr := needRedis(t)
	prefix := uniquePrefix(t)
	admin := newClient(t, addr)
	px := startProxy(t, addr)
	// A connection attempt during the partition hangs in its handshake (HELLO) until
	// the client's ReadTimeout, unless go-redis heeds the broker's context deadline.
	rdb := redis.NewClient(&redis.Options{Addr: px.addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	got := make(chan delivery, 64)
	logger, logs := wstest.NewLogger()
	const interval = 200 * time.Millisecond
	b := redisbroker.New(rdb, &redisbroker.Options{
		Prefix: prefix, Logger: logger, HealthCheckInterval: interval,
		ReconnectMin: 10 * time.Millisecond, ReconnectMax: 100 * time.Millisecond,
	})
	require.NoError(t, b.Start(func(ch string, p []byte) { got <- delivery{ch, p} }))
	t.Cleanup(func() { _ = b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	require.NoError(t, b.Subscribe(ctx, "x"))
	eventually(t, b.Up)

	px.frozen.Store(true)
	start := time.Now()
	eventually(t, func() bool { return !b.Up() })
	detected := time.Since(start)
	t.Logf("half-open connection detected after %v", detected)
	assert.Less(t, detected, 3*interval+time.Second)
	assert.Equal(t, uint64(1), b.Outages())

	px.frozen.Store(false)

	eventually(t, b.Up, "reconnected once the network is back")
	assert.Equal(t, uint64(1), b.Outages())
	require.NoError(t, admin.Publish(ctx, prefix+"x", "back").Err())
	assert.Equal(t, delivery{"x", []byte("back")}, receive(t, got))
	require.Len(t, logs.Events("redis_broker_down"), 1)
	require.Len(t, logs.Events("redis_broker_up"), 2)
}

// TestBrokerChangesSurviveErrors: a subscription change whose context ends before Redis
// could confirm it (here: before the command could even be sent) fails, but is
// recorded, and the reader carries it out: an error never means "forgotten".
func TestBrokerChangesSurviveErrors(t *testing.T) {
	addr := needRedis(t)
	prefix := uniquePrefix(t)
	admin := newClient(t, addr)
	got := make(chan delivery, 64)
	b := startBroker(t, addr, redisbroker.Options{Prefix: prefix, HealthCheckInterval: 100 * time.Millisecond},
		func(ch string, p []byte) { got <- delivery{ch, p} })
	eventually(t, b.Up)
	numsub := func() int64 { return adminNumSub(t, admin, prefix+"x") }

	for _, step := range []struct {
		change func(context.Context, string) error
		want   int64
	}{{b.Subscribe, 1}, {b.Unsubscribe, 0}, {b.Subscribe, 1}} {
		release := redisbroker.HoldCommands(b)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := step.change(ctx, "x")
		cancel()
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, 1-step.want, numsub(), "not sent yet")
		release()
		eventually(t, func() bool { return numsub() == step.want }, "the reader carries out the recorded change")
	}
	require.NoError(t, admin.Publish(context.Background(), prefix+"x", "kept").Err())
	assert.Equal(t, delivery{"x", []byte("kept")}, receive(t, got))

	// With a context already cancelled, the call may fail or not: either way the last
	// change wins.
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range 20 {
		if i%2 == 0 {
			_ = b.Unsubscribe(cancelled, "x")
		} else {
			_ = b.Subscribe(cancelled, "x")
		}
	}
	eventually(t, func() bool { return numsub() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	require.NoError(t, b.Unsubscribe(ctx, "x"))
	assert.Zero(t, numsub())
}
