package prommetrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Observer turns the hub's measurements into histograms. Pass it as
// wspub.Options.Observer when you create the hub (a hub created without it has no
// histograms), and to NewCollector, which exports them. Use one Observer per hub. Its
// methods are safe for concurrent use, and a nil *Observer ignores every measurement.
type Observer struct {
	opts Options // with defaults; NewCollector inherits them
	err  error   // invalid Options: nothing is measured, registration fails

	fanoutSeconds    prometheus.Histogram
	fanoutRecipients prometheus.Histogram
	evictedBytes     prometheus.Histogram
}

// NewObserver returns an Observer with the histograms wspub_publish_fanout_seconds,
// wspub_publish_fanout_recipients and wspub_evicted_queue_bytes, named and labelled by
// opts (nil means defaults).
func NewObserver(opts *Options) *Observer {
	o, err := opts.withDefaults()
	obs := &Observer{opts: o, err: err}
	if err != nil {
		return obs
	}
	histogram := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: o.Namespace, Name: name, Help: help,
			ConstLabels: o.ConstLabels, Buckets: buckets,
		})
	}
	obs.fanoutSeconds = histogram("publish_fanout_seconds",
		"Time to queue one message (published on this node, or received from another through the broker) for its local recipients.",
		o.FanoutBuckets)
	obs.fanoutRecipients = histogram("publish_fanout_recipients",
		"Local connections one message was queued for.",
		o.RecipientBuckets)
	obs.evictedBytes = histogram("evicted_queue_bytes",
		"Bytes waiting in the send queue of a slow consumer when it was evicted.",
		o.EvictionBuckets)
	return obs
}

// Fanout implements wspub.Observer.
func (o *Observer) Fanout(recipients int, d time.Duration) {
	if o == nil || o.err != nil {
		return
	}
	o.fanoutSeconds.Observe(d.Seconds())
	o.fanoutRecipients.Observe(float64(recipients))
}

// Eviction implements wspub.Observer. The number of messages lost is not observed here:
// wspub_messages_dropped_total counts them.
func (o *Observer) Eviction(queuedBytes, _ int) {
	if o == nil || o.err != nil {
		return
	}
	o.evictedBytes.Observe(float64(queuedBytes))
}

func (o *Observer) histograms() []prometheus.Histogram {
	return []prometheus.Histogram{o.fanoutSeconds, o.fanoutRecipients, o.evictedBytes}
}
