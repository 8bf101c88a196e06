package prommetrics

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wspub/wspub"
	"github.com/wspub/wspub/internal/wstest"
)

// statNames are the metrics read from Hub.Stats, in the order of its fields.
var statNames = []string{
	"wspub_connections", "wspub_channels", "wspub_subscriptions", "wspub_users",
	"wspub_connections_accepted_total", "wspub_connections_rejected_total",
	"wspub_messages_published_total", "wspub_messages_delivered_total",
	"wspub_frames_written_total", "wspub_messages_dropped_total",
	"wspub_slow_consumer_evictions_total", "wspub_connections_reaped_total",
	"wspub_client_errors_total", "wspub_rate_limited_total", "wspub_policy_closes_total", "wspub_frame_floods_total",
	"wspub_handler_panics_total", "wspub_disconnects_total",
	"wspub_broker_up", "wspub_broker_outages_total", "wspub_broker_errors_total",
	"wspub_broker_received_total", "wspub_broker_invalid_total", "wspub_broker_dropped_total",
}

var histogramNames = []string{
	"wspub_publish_fanout_seconds", "wspub_publish_fanout_recipients", "wspub_evicted_queue_bytes",
}

// TestCollectorFreshHub: a new hub exports every metric, with its HELP and TYPE, at zero
// (wspub_broker_up at 1: a hub without a broker is up).
func TestCollectorFreshHub(t *testing.T) {
	obs := NewObserver(nil)
	hub, _ := startHub(t, &wspub.Options{Observer: obs})
	col := NewCollector(hub, obs, nil)

	golden, err := os.Open("testdata/fresh.prom")
	require.NoError(t, err)
	t.Cleanup(func() { _ = golden.Close() })
	assert.NoError(t, testutil.CollectAndCompare(col, golden))
	assert.Equal(t, len(statNames)+len(histogramNames), testutil.CollectAndCount(col))
	assert.Equal(t, 1, testutil.CollectAndCount(col, "wspub_connections"))
	assert.Equal(t, 1.0, testutil.ToFloat64(stat(t, col, "broker_up")))
}

// TestCollectorFollowsHub: two clients on one channel and a publish show up in the
// gauges, the counters and the fan-out histograms.
func TestCollectorFollowsHub(t *testing.T) {
	obs := NewObserver(nil)
	hub, url := startHub(t, &wspub.Options{Observer: obs})
	col := NewCollector(hub, obs, nil)
	a, b := dial(t, url), dial(t, url)
	a.Subscribe("a", "1")
	b.Subscribe("a", "1")

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	require.NoError(t, hub.Publish(ctx, "a", wspub.Message{Type: "note", Data: "hi"}))
	for _, c := range []*wstest.Conn{a, b} {
		assert.Equal(t, wstest.Msg{Type: "note", Channel: "a", Data: json.RawMessage(`"hi"`)}, c.Next())
	}
	// The welcome (read before dial returns), the ack and the message, one frame each, to
	// each client.
	eventually(t, func() bool { st := hub.Stats(); return st.Delivered == 6 && st.Frames == 6 })

	assert.NoError(t, testutil.CollectAndCompare(col, strings.NewReader(`
# HELP wspub_connections Open WebSocket connections.
# TYPE wspub_connections gauge
wspub_connections 2
# HELP wspub_channels Channels with at least one local subscriber.
# TYPE wspub_channels gauge
wspub_channels 1
# HELP wspub_subscriptions Subscriptions: connection-channel pairs.
# TYPE wspub_subscriptions gauge
wspub_subscriptions 2
# HELP wspub_users Distinct authenticated users connected.
# TYPE wspub_users gauge
wspub_users 0
# HELP wspub_connections_accepted_total Connections upgraded to WebSocket.
# TYPE wspub_connections_accepted_total counter
wspub_connections_accepted_total 2
# HELP wspub_messages_published_total Messages accepted by Publish, Broadcast, SendToUser and client publishes.
# TYPE wspub_messages_published_total counter
wspub_messages_published_total 1
# HELP wspub_messages_delivered_total Messages written to a connection's socket, replies included.
# TYPE wspub_messages_delivered_total counter
wspub_messages_delivered_total 6
# HELP wspub_frames_written_total WebSocket frames written; messages delivered per frame is the batching factor.
# TYPE wspub_frames_written_total counter
wspub_frames_written_total 6
# HELP wspub_disconnects_total Connections that have ended, for any reason.
# TYPE wspub_disconnects_total counter
wspub_disconnects_total 0
# HELP wspub_publish_fanout_recipients Local connections one message was queued for.
# TYPE wspub_publish_fanout_recipients histogram
wspub_publish_fanout_recipients_bucket{le="0"} 0
wspub_publish_fanout_recipients_bucket{le="1"} 0
wspub_publish_fanout_recipients_bucket{le="4"} 1
wspub_publish_fanout_recipients_bucket{le="16"} 1
wspub_publish_fanout_recipients_bucket{le="64"} 1
wspub_publish_fanout_recipients_bucket{le="256"} 1
wspub_publish_fanout_recipients_bucket{le="1024"} 1
wspub_publish_fanout_recipients_bucket{le="4096"} 1
wspub_publish_fanout_recipients_bucket{le="16384"} 1
wspub_publish_fanout_recipients_bucket{le="65536"} 1
wspub_publish_fanout_recipients_bucket{le="+Inf"} 1
wspub_publish_fanout_recipients_sum 2
wspub_publish_fanout_recipients_count 1
`),
		"wspub_connections", "wspub_channels", "wspub_subscriptions", "wspub_users",
		"wspub_connections_accepted_total", "wspub_messages_published_total",
		"wspub_messages_delivered_total", "wspub_frames_written_total", "wspub_disconnects_total",
		"wspub_publish_fanout_recipients"))
	fanout := histogram(t, col, "wspub_publish_fanout_seconds")
	assert.Equal(t, uint64(1), fanout.GetSampleCount())
	assert.Greater(t, fanout.GetSampleSum(), 0.0)

	// Each Publish is one fan-out, with or without recipients.
	require.NoError(t, hub.Publish(ctx, "nobody", wspub.Message{Type: "note"}))
	require.NoError(t, hub.Broadcast(ctx, wspub.Message{Type: "note"}))
	assert.Equal(t, 3.0, testutil.ToFloat64(stat(t, col, "messages_published_total")))
	assert.Equal(t, uint64(3), histogram(t, col, "wspub_publish_fanout_seconds").GetSampleCount())
	recipients := histogram(t, col, "wspub_publish_fanout_recipients")
	assert.Equal(t, uint64(3), recipients.GetSampleCount())
	assert.Equal(t, 4.0, recipients.GetSampleSum(), "2 + 0 + 2")
	assert.Equal(t, uint64(1), recipients.GetBucket()[0].GetCumulativeCount(), "le=0: the publish to nobody")

	// A client leaving moves the gauges down and the disconnects up.
	require.NoError(t, b.WS.CloseNow())
	eventually(t, func() bool { return testutil.ToFloat64(stat(t, col, "connections")) == 1 })
	assert.Equal(t, 1.0, testutil.ToFloat64(stat(t, col, "subscriptions")))
	assert.Equal(t, 1.0, testutil.ToFloat64(stat(t, col, "disconnects_total")))
}

// TestCollectorWithoutObserver: without an Observer the collector exports Stats only.
func TestCollectorWithoutObserver(t *testing.T) {
	hub, _ := startHub(t, nil)
	col := NewCollector(hub, nil, nil)
	assert.Equal(t, len(statNames), testutil.CollectAndCount(col))
	assert.Equal(t, 0, testutil.CollectAndCount(col, histogramNames...))
	assert.Equal(t, len(statNames), testutil.CollectAndCount(col, statNames...))
}

// TestCollectorLint: promlint finds nothing to fault in any metric, histograms and
// labels included.
func TestCollectorLint(t *testing.T) {
	for name, opts := range map[string]*Options{
		"defaults": nil,
		"labels":   {Namespace: "chat", ConstLabels: prometheus.Labels{"hub": "main"}},
	} {
		t.Run(name, func(t *testing.T) {
			obs := NewObserver(opts)
			hub, url := startHub(t, &wspub.Options{Observer: obs})
			dial(t, url).Subscribe("a", "1")
			require.NoError(t, hub.Publish(context.Background(), "a", wspub.Message{Type: "note"}))

			col := NewCollector(hub, obs, nil)
			problems, err := testutil.CollectAndLint(col)
			require.NoError(t, err)
			assert.Empty(t, problems)
			assert.Equal(t, len(statNames)+len(histogramNames), testutil.CollectAndCount(col))
		})
	}
}

// TestCollectorOptions: the collector takes its Observer's Options unless given its own;
// the caller's Options are never changed.
func TestCollectorOptions(t *testing.T) {
	hub, _ := startHub(t, nil)
	opts := &Options{Namespace: "chat", ConstLabels: prometheus.Labels{"hub": "main"}}
	obs := NewObserver(opts)
	opts.ConstLabels["hub"] = "changed later"
	assert.Equal(t, &Options{Namespace: "chat", ConstLabels: prometheus.Labels{"hub": "changed later"}}, opts)

	const want = `
# HELP chat_connections Open WebSocket connections.
# TYPE chat_connections gauge
chat_connections{hub="main"} 0
`
	assert.NoError(t, testutil.CollectAndCompare(NewCollector(hub, obs, nil),
		strings.NewReader(want), "chat_connections"), "inherited from the Observer")
	assert.NoError(t, testutil.CollectAndCompare(NewCollector(hub, nil, opts),
		strings.NewReader(strings.ReplaceAll(want, "main", "changed later")), "chat_connections"))
	assert.Equal(t, 1, testutil.CollectAndCount(NewCollector(hub, obs, nil), "chat_publish_fanout_seconds"))
	assert.Equal(t, 1, testutil.CollectAndCount(NewCollector(hub, obs, &Options{}), "wspub_connections"),
		"given Options win over the Observer's")
}
