package prommetrics

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wspub/wspub"
)

// TestRegistryTwoHubs: two hubs told apart by ConstLabels share one registry; a second
// collector with the same labels is refused.
func TestRegistryTwoHubs(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	hubs := map[string]*wspub.Hub{}
	for _, name := range []string{"chat", "feeds"} {
		obs := NewObserver(&Options{ConstLabels: prometheus.Labels{"hub": name}})
		hub, _ := startHub(t, &wspub.Options{Observer: obs})
		require.NoError(t, reg.Register(NewCollector(hub, obs, nil)))
		hubs[name] = hub
	}
	require.NoError(t, hubs["feeds"].Publish(context.Background(), "a", wspub.Message{Type: "m"}))

	assert.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP wspub_messages_published_total Messages accepted by Publish, Broadcast, SendToUser and client publishes.
# TYPE wspub_messages_published_total counter
wspub_messages_published_total{hub="chat"} 0
wspub_messages_published_total{hub="feeds"} 1
`), "wspub_messages_published_total"))
	n, err := testutil.GatherAndCount(reg)
	require.NoError(t, err)
	assert.Equal(t, 2*(len(statNames)+len(histogramNames)), n)
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	assert.Empty(t, problems)

	again := NewObserver(&Options{ConstLabels: prometheus.Labels{"hub": "chat"}})
	err = reg.Register(NewCollector(hubs["chat"], again, nil))
	var dup prometheus.AlreadyRegisteredError
	assert.ErrorAs(t, err, &dup, "same names and labels")
	err = reg.Register(NewCollector(hubs["chat"], nil, nil))
	assert.ErrorContains(t, err, "different label names", "unlabelled next to labelled")
}

// TestRegistryInvalid: a collector that cannot work is refused by Register with an
// error, not a panic.
func TestRegistryInvalid(t *testing.T) {
	hub, _ := startHub(t, nil)
	for name, tc := range map[string]struct {
		hub  *wspub.Hub
		opts *Options
		want string
	}{
		"nil hub":        {hub: nil, want: "needs a hub"},
		"le label":       {hub: hub, opts: &Options{ConstLabels: prometheus.Labels{"le": "1"}}, want: `"le" is reserved`},
		"reserved label": {hub: hub, opts: &Options{ConstLabels: prometheus.Labels{"__hub": "a"}}, want: "__hub"},
		"invalid value":  {hub: hub, opts: &Options{ConstLabels: prometheus.Labels{"hub": "\xff"}}, want: "UTF-8"},
		"NaN bucket":     {hub: hub, opts: &Options{EvictionBuckets: []float64{1, math.NaN()}}, want: "EvictionBuckets: NaN"},
		"empty label":    {hub: hub, opts: &Options{ConstLabels: prometheus.Labels{"": "x"}}, want: "label name"},
	} {
		t.Run(name, func(t *testing.T) {
			assert.NotPanics(t, func() {
				obs := NewObserver(tc.opts)
				obs.Fanout(1, 1)
				obs.Eviction(1, 1)
				err := prometheus.NewRegistry().Register(NewCollector(tc.hub, obs, nil))
				assert.ErrorContains(t, err, tc.want)
				err = prometheus.NewRegistry().Register(NewCollector(tc.hub, nil, tc.opts))
				assert.ErrorContains(t, err, tc.want)
				err = prometheus.NewRegistry().Register(NewCollector(tc.hub, obs, &Options{}))
				assert.ErrorContains(t, err, tc.want, "the Observer's error")
			})
		})
	}
}
