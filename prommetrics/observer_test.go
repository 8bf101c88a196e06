package prommetrics

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wspub/wspub"
)

// TestObserverEviction: a client that stops reading is evicted once its 16 KiB queue is
// full, and the eviction histogram records what the queue held.
func TestObserverEviction(t *testing.T) {
	obs := NewObserver(nil)
	hub, url := startHub(t, &wspub.Options{Observer: obs, MaxQueueBytes: 16 << 10})
	col := NewCollector(hub, obs, nil)
	dial(t, url).Subscribe("s", "1") // and never reads again

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	pad := strings.Repeat("x", 1000)
	// The socket buffers fill first; then the queue overflows.
	for i := 0; i < 100_000 && hub.Stats().SlowEvictions == 0; i++ {
		require.NoError(t, hub.Publish(ctx, "s", wspub.Message{Type: "m", Data: pad}))
	}
	require.Equal(t, uint64(1), hub.Stats().SlowEvictions)
	// The hub counts the eviction before it calls the Observer.
	eventually(t, func() bool { return histogram(t, col, "wspub_evicted_queue_bytes").GetSampleCount() == 1 })

	evicted := histogram(t, col, "wspub_evicted_queue_bytes")
	assert.GreaterOrEqual(t, evicted.GetSampleSum(), float64(15<<10), "the queue was full")
	assert.LessOrEqual(t, evicted.GetSampleSum(), float64(16<<10))
	buckets := evicted.GetBucket()
	require.Len(t, buckets, 8)
	assert.Equal(t, float64(16<<10), buckets[2].GetUpperBound())
	assert.Equal(t, uint64(1), buckets[2].GetCumulativeCount(), "in the le=16384 bucket")
	assert.Equal(t, uint64(0), buckets[1].GetCumulativeCount())
	assert.Equal(t, 1.0, testutil.ToFloat64(stat(t, col, "slow_consumer_evictions_total")))
	assert.Positive(t, testutil.ToFloat64(stat(t, col, "messages_dropped_total")))
}

// TestObserverBuckets: buckets are taken in any order, without duplicates, and the
// caller's slices are not changed.
func TestObserverBuckets(t *testing.T) {
	fanout := []float64{0.1, 0.01, 0.01, 0.001}
	obs := NewObserver(&Options{FanoutBuckets: fanout, RecipientBuckets: []float64{10}, EvictionBuckets: []float64{}})
	assert.Equal(t, []float64{0.1, 0.01, 0.01, 0.001}, fanout)

	obs.Fanout(20, 5*time.Millisecond)
	obs.Eviction(3000, 3)
	hub, _ := startHub(t, nil)
	col := NewCollector(hub, obs, nil)

	var bounds []float64
	for _, b := range histogram(t, col, "wspub_publish_fanout_seconds").GetBucket() {
		bounds = append(bounds, b.GetUpperBound())
	}
	assert.Equal(t, []float64{0.001, 0.01, 0.1}, bounds)
	assert.Equal(t, 0.005, histogram(t, col, "wspub_publish_fanout_seconds").GetSampleSum())

	recipients := histogram(t, col, "wspub_publish_fanout_recipients")
	require.Len(t, recipients.GetBucket(), 1)
	assert.Equal(t, uint64(0), recipients.GetBucket()[0].GetCumulativeCount())
	assert.Equal(t, uint64(1), recipients.GetSampleCount())
	assert.Len(t, histogram(t, col, "wspub_evicted_queue_bytes").GetBucket(), 8, "empty: the defaults")
}

// TestObserverNil: a nil *Observer, even inside wspub.Options, ignores measurements.
func TestObserverNil(t *testing.T) {
	var obs *Observer
	assert.NotPanics(t, func() {
		obs.Fanout(1, time.Second)
		obs.Eviction(1, 1)
	})
	hub, url := startHub(t, &wspub.Options{Observer: obs})
	dial(t, url).Subscribe("a", "1")
	assert.NotPanics(t, func() { _ = hub.Publish(context.Background(), "a", wspub.Message{Type: "m"}) })
	assert.Equal(t, len(statNames), testutil.CollectAndCount(NewCollector(hub, obs, nil)))
}
