package wspub

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wspub/wspub/internal/wstest"
)

type recordingObserver struct {
	mu        sync.Mutex
	fanouts   []int
	evictions [][2]int
}

func (o *recordingObserver) Fanout(n int, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if d >= 0 {
		o.fanouts = append(o.fanouts, n)
	}
}

func (o *recordingObserver) Eviction(bytes, msgs int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.evictions = append(o.evictions, [2]int{bytes, msgs})
}

// TestObserver: the hub reports each fan-out's recipients and each evicted slow
// consumer's queue to Options.Observer.
func TestObserver(t *testing.T) {
	obs := &recordingObserver{}
	h, url := startHub(t, &Options{Observer: obs, MaxQueueBytes: 16 << 10})
	a, b, stalled := dial(t, url), dial(t, url), dial(t, url)
	for _, c := range []*wstest.Conn{a, b, stalled} {
		c.Subscribe("s", "s")
	}
	require.NoError(t, h.Publish(context.Background(), "s", Message{Type: "m"}))
	require.NoError(t, h.Publish(context.Background(), "nobody", Message{Type: "m"}))
	obs.mu.Lock()
	assert.Equal(t, []int{3, 0}, obs.fanouts)
	obs.mu.Unlock()

	require.NoError(t, a.WS.CloseNow())
	require.NoError(t, b.WS.CloseNow())
	eventually(t, func() bool { return h.Stats().Connections == 1 })
	pad := strings.Repeat("x", 1000)
	for i := 0; i < 100000 && h.Stats().SlowEvictions == 0; i++ {
		require.NoError(t, h.Publish(context.Background(), "s", Message{Type: "m", Data: pad}))
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	require.Len(t, obs.evictions, 1)
	assert.Greater(t, obs.evictions[0][0], 15<<10, "the queue was full")
	assert.Greater(t, obs.evictions[0][1], 10)
}
