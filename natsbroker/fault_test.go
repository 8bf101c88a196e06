package natsbroker

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wspub/wspub"
	"github.com/wspub/wspub/internal/wstest"
)

// TestBrokerDownAndRestart kills the test's own nats-server with SIGKILL and starts it
// again on the same port:
//   - while it is down, Publish returns an error wrapping wspub.ErrBroker within about a
//     second even with a context without deadline, the publishing node's own
//     subscribers still get the message, and Stats().BrokerUp is false;
//   - once it is back, the connections reconnect and the subscriptions come back by
//     themselves (one made during the outage too), messages cross nodes again, the
//     outage is counted, and nats_broker_down and nats_broker_up are logged.
func TestBrokerDownAndRestart(t *testing.T) {
	srv := startNATSServer(t)
	prefix := testPrefix(t)
	hubOpts := wspub.Options{BrokerTimeout: 500 * time.Millisecond}
	logA, logsA := wstest.NewLogger()
	logB, logsB := wstest.NewLogger()
	// A confirms its publishes, so that even a Publish racing the crash fails; B relies
	// on the connection's state.
	a := startNode(t, srv.url(), prefix, hubOpts, Options{Logger: logA, Confirm: true})
	b := startNode(t, srv.url(), prefix, hubOpts, Options{Logger: logB})
	ca, cb := dial(t, a.url), dial(t, b.url)
	ca.Subscribe("x", "s")
	cb.Subscribe("x", "s")
	ctx := context.Background() // no deadline: BrokerTimeout bounds the broker's part
	require.NoError(t, a.hub.Publish(ctx, "x", wspub.Message{Type: "before"}))
	ca.Expect("before")
	cb.Expect("before")

	srv.kill()

	// Row 16, at once: A's connection may not have noticed yet; the confirmation fails.
	start := time.Now()
	err := a.hub.Publish(ctx, "x", wspub.Message{Type: "during-a"})
	t.Logf("publish at the crash: %v after %v", err, time.Since(start))
	assert.ErrorIs(t, err, wspub.ErrBroker)
	assert.ErrorIs(t, err, ErrDown)
	assert.Less(t, time.Since(start), time.Second)
	ca.Expect("during-a") // this node's subscriber is served all the same

	// Row 16, once B knows: Publish fails without waiting at all.
	eventually(t, func() bool { return !b.hub.Stats().BrokerUp }, "node B sees the outage")
	eventually(t, func() bool { return !a.hub.Stats().BrokerUp }, "node A sees the outage")
	start = time.Now()
	err = b.hub.Publish(ctx, "x", wspub.Message{Type: "during-b"})
	assert.ErrorIs(t, err, wspub.ErrBroker)
	assert.ErrorIs(t, err, ErrDown)
	assert.Less(t, time.Since(start), 100*time.Millisecond)
	cb.Expect("during-b")

	// A subscription made during the outage is acknowledged locally and sent when the
	// connection is back.
	late := dial(t, b.url)
	start = time.Now()
	late.Subscribe("late", "s")
	assert.Less(t, time.Since(start), time.Second, "a subscribe does not wait for the broker")
	assert.GreaterOrEqual(t, b.hub.Stats().BrokerErrors, uint64(2), "the failed publish and subscribe")
	eventually(t, func() bool {
		return len(logsA.Events("nats_broker_down")) == 1 && len(logsB.Events("nats_broker_down")) == 1
	})

	// Row 17: the server comes back on the same port.
	srv.start()
	for _, n := range []*node{a, b} {
		eventually(t, func() bool { return n.hub.Stats().BrokerUp }, "reconnected")
		assert.GreaterOrEqual(t, n.hub.Stats().BrokerOutages, uint64(1))
	}
	crossesEventually(t, a, b, "x", "again-ab")
	cb.Until("again-ab")
	crossesEventually(t, a, b, "late", "again-late")
	late.Until("again-late")
	crossesEventually(t, b, a, "x", "again-ba") // and the other way
	ca.Until("again-ba")                        // after A's own "again-ab"s

	for name, logs := range map[string]*wstest.LogRecorder{"A": logsA, "B": logsB} {
		eventually(t, func() bool { return len(logs.Events("nats_broker_up")) == 1 }, "node %s logs the reconnect", name)
		down := logs.Events("nats_broker_down")
		require.Len(t, down, 1, "node %s: one outage, logged once", name)
		assert.Equal(t, slog.LevelWarn, down[0]["level"])
		assert.Equal(t, slog.LevelInfo, logs.Events("nats_broker_up")[0]["level"])
		assert.Equal(t, []string{"nats_broker_down", "nats_broker_up"}, logs.Messages(), "node %s", name)
		assert.Equal(t, uint64(1), map[string]*node{"A": a, "B": b}[name].broker.Outages())
	}
}

// crossesEventually publishes a message of type typ on from's channel until to has received one from
// the broker: right after a reconnect, the two connections' subscriptions and publishes
// reach the server in no particular order. It gives up after about ten seconds.
func crossesEventually(t *testing.T, from, to *node, channel, typ string) {
	t.Helper()
	for range 100 {
		before := to.hub.Stats().BrokerReceived
		_ = from.hub.Publish(context.Background(), channel, wspub.Message{Type: typ})
		deadline := time.Now().Add(100 * time.Millisecond)
		for time.Now().Before(deadline) {
			if to.hub.Stats().BrokerReceived > before {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	t.Fatalf("no message on %q crosses nodes after the restart", channel)
}
