package prommetrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"github.com/wspub/wspub"
	"github.com/wspub/wspub/internal/wstest"
)

// testTimeout bounds every test's dialing and reading.
const testTimeout = 30 * time.Second

// startHub serves a new hub on an httptest server and returns it with its ws:// URL.
// Cleanup closes the hub, then the server.
func startHub(t *testing.T, opts *wspub.Options) (*wspub.Hub, string) {
	t.Helper()
	hub := wspub.New(opts)
	return hub, wstest.ServeHub(t, hub)
}

// dial connects a WebSocket client to a test hub.
func dial(t *testing.T, url string) *wstest.Conn {
	t.Helper()
	return wstest.Dial(t, url, &wstest.DialOptions{Timeout: testTimeout})
}

// eventually waits for cond, polling briefly.
func eventually(t *testing.T, cond func() bool, msgAndArgs ...any) {
	t.Helper()
	require.Eventually(t, cond, 10*time.Second, 5*time.Millisecond, msgAndArgs...)
}

// stat returns a collector of the one Stats metric named name (without the namespace)
// that col exports, for testutil.ToFloat64.
func stat(t *testing.T, col prometheus.Collector, name string) prometheus.Collector {
	t.Helper()
	c := col.(*collector)
	for i, m := range c.metrics {
		if m.name == name {
			return only{c, c.descs[i]}
		}
	}
	t.Fatalf("no Stats metric %q", name)
	return nil
}

// only is the part of a collector's output with one descriptor.
type only struct {
	col  prometheus.Collector
	desc *prometheus.Desc
}

func (o only) Describe(ch chan<- *prometheus.Desc) { ch <- o.desc }

func (o only) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric)
	go func() {
		o.col.Collect(all)
		close(all)
	}()
	for m := range all {
		if m.Desc() == o.desc {
			ch <- m
		}
	}
}

// histogram gathers col on a pedantic registry (which also checks that Collect matches
// Describe) and returns the histogram named name.
func histogram(t *testing.T, col prometheus.Collector, name string) *dto.Histogram {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(col))
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == name {
			require.Len(t, f.GetMetric(), 1)
			return f.GetMetric()[0].GetHistogram()
		}
	}
	t.Fatalf("no histogram %q", name)
	return nil
}
