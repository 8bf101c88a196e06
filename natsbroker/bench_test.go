package natsbroker

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/wspub/wspub"
)

// BenchmarkCrossNodeLatency measures the time from Hub.Publish on node A to the message's
// arrival at a real WebSocket client of node B, through NATS: encoding, the broker hop,
// node B's fan-out and the socket write. Each message is awaited before the next is
// published, so it measures latency, not queueing. It reports the median and the 99th
// percentile in microseconds.
func BenchmarkCrossNodeLatency(b *testing.B) {
	nodes := startNodes(b, natsURL(b), 2, wspub.Options{})
	c := dial(b, nodes[1].url)
	c.Subscribe("lat", "s")
	ctx := context.Background()
	lats := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		sent := time.Now()
		if err := nodes[0].hub.Publish(ctx, "lat", wspub.Message{Type: "t", Data: sent.UnixNano()}); err != nil {
			b.Fatal(err)
		}
		e := c.Expect("t")
		got := time.Now()
		ns, err := strconv.ParseInt(string(e.Data), 10, 64)
		require.NoError(b, err)
		lats = append(lats, got.Sub(time.Unix(0, ns)))
	}
	b.StopTimer()
	slices.Sort(lats)
	b.ReportMetric(float64(lats[len(lats)/2])/float64(time.Microsecond), "p50-µs")
	b.ReportMetric(float64(lats[len(lats)*99/100])/float64(time.Microsecond), "p99-µs")
}
