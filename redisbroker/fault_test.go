package redisbroker_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wspub/wspub"
	"github.com/wspub/wspub/internal/wstest"
	"github.com/wspub/wspub/redisbroker"
)

// TestRedisDownAndRestart runs two nodes against a redis-server of its own, kills it with
// SIGKILL, then restarts it on the same port.
//
// Down: Publish returns an error wrapping wspub.ErrBroker within
// about BrokerTimeout, even with a context without deadline; a subscriber on the
// publishing node still gets the message; BrokerUp turns false. A subscription made
// while Redis is down is acknowledged after the broker error, and kept.
//
// Restart: the brokers reconnect and subscribe again by themselves; BrokerUp
// is true again, the outage is counted and logged once; messages cross nodes again,
// on the old channel and on the one subscribed during the outage.
func TestRedisDownAndRestart(t *testing.T) {
	srv := startRedisServer(t)
	prefix := uniquePrefix(t)
	hubOpts := wspub.Options{BrokerTimeout: 500 * time.Millisecond}
	brokerOpts := func(logger *slog.Logger) redisbroker.Options {
		return redisbroker.Options{
			Logger:              logger,
			HealthCheckInterval: 500 * time.Millisecond,
			ReconnectMin:        50 * time.Millisecond,
			ReconnectMax:        500 * time.Millisecond,
		}
	}
	loggerA, logsA := wstest.NewLogger()
	loggerB, logsB := wstest.NewLogger()
	a := startNode(t, srv.addr, prefix, hubOpts, brokerOpts(loggerA))
	b := startNode(t, srv.addr, prefix, hubOpts, brokerOpts(loggerB))
	ca, cb := dial(t, a.url), dial(t, b.url)
	ca.Subscribe("feed", "s")
	cb.Subscribe("feed", "s")
	ctx := context.Background()
	require.NoError(t, a.hub.Publish(ctx, "feed", wspub.Message{Type: "before"}))
	ca.Expect("before")
	cb.Expect("before")
	eventually(t, func() bool { return a.hub.Stats().BrokerUp && b.hub.Stats().BrokerUp })

	// Down.
	srv.kill()
	start := time.Now()
	err := a.hub.Publish(ctx, "feed", wspub.Message{Type: "during"})
	elapsed := time.Since(start)
	t.Logf("Publish with Redis down returned after %v: %v", elapsed, err)
	require.ErrorIs(t, err, wspub.ErrBroker)
	assert.Less(t, elapsed, time.Second, "Publish returns within about BrokerTimeout")
	ca.Expect("during") // this node's subscriber is served all the same
	eventually(t, func() bool { return !a.hub.Stats().BrokerUp && !b.hub.Stats().BrokerUp })
	for _, n := range []*node{a, b} {
		assert.Equal(t, uint64(1), n.hub.Stats().BrokerOutages)
	}
	late := dial(t, b.url)
	late.Subscribe("late", "s") // the broker subscribe fails: acknowledged, and recorded

	// Restart.
	srv.start()
	eventually(t, func() bool { return a.hub.Stats().BrokerUp && b.hub.Stats().BrokerUp }, "reconnected")
	for _, n := range []*node{a, b} {
		st := n.hub.Stats()
		assert.GreaterOrEqual(t, st.BrokerOutages, uint64(1))
		assert.Positive(t, st.BrokerErrors)
	}
	crossUntilReceived(t, a.hub, "feed", cb)
	crossUntilReceived(t, a.hub, "late", late)

	for i, n := range []struct {
		broker   *redisbroker.Broker
		logs     *wstest.LogRecorder
		channels int64 // subscribed again: broadcast, feed, and late on b
	}{{a.broker, logsA, 2}, {b.broker, logsB, 3}} {
		downs, ups := n.logs.Events("redis_broker_down"), n.logs.Events("redis_broker_up")
		outages := int(n.broker.Outages())
		assert.Len(t, downs, outages, "node %d: one redis_broker_down per outage", i)
		for _, d := range downs {
			assert.Equal(t, slog.LevelWarn, d["level"])
			assert.NotEmpty(t, d["error"])
		}
		require.Len(t, ups, outages+1, "node %d: one redis_broker_up per connection: the first, then one per outage", i)
		assert.Equal(t, n.channels, ups[len(ups)-1]["channels"], "node %d", i)
	}
}

// crossUntilReceived publishes numbered probes on pub until c receives one: messages
// published before the subscription is back are lost (at-most-once), so the test polls,
// within a bound.
func crossUntilReceived(t *testing.T, pub *wspub.Hub, channel string, c *wstest.Conn) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		probe := fmt.Sprint("probe-", i)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = pub.Publish(ctx, channel, wspub.Message{Type: "probe", Data: probe}) // may fail while reconnecting
		cancel()
		if e, ok := c.TryNext(200 * time.Millisecond); ok {
			require.Equal(t, "probe", e.Type, "message %+v", e)
			require.Equal(t, channel, e.Channel)
			return
		}
	}
	require.FailNow(t, "no message crossed the nodes after the restart", "channel %q", channel)
}
