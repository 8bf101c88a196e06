package prommetrics

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configures an Observer and a collector. The zero value, and a nil *Options,
// mean defaults; the struct, its map and its slices are copied, so the caller's values
// are never changed. Invalid options are reported by the registry when the collector is
// registered (Registry.Register returns the error), never by a panic.
type Options struct {
	// Namespace prefixes every metric name, as in wspub_connections. Default: "wspub".
	Namespace string

	// ConstLabels are added to every metric. Give each hub on one registry its own value,
	// such as {"hub": "chat"}: two collectors with the same names and labels conflict.
	// "le" is not allowed (histograms use it). Default: nil, no labels.
	ConstLabels prometheus.Labels

	// FanoutBuckets are the upper bounds, in seconds, of the
	// wspub_publish_fanout_seconds histogram. Queueing a message for its recipients waits
	// for no socket: it takes about 0.2µs per recipient (see BENCHMARKS.md), so 0.2ms for
	// a thousand. Default: 5µs, 10µs, 25µs, 50µs, 100µs, 250µs, 500µs, 1ms, 2.5ms, 5ms,
	// 10ms, 25ms, 50ms, 100ms.
	FanoutBuckets []float64

	// RecipientBuckets are the upper bounds of the wspub_publish_fanout_recipients
	// histogram, the number of local connections a message was queued for; 0 counts the
	// messages that had none. Default: 0, 1, 4, 16, 64, 256, 1024, 4096, 16384, 65536.
	RecipientBuckets []float64

	// EvictionBuckets are the upper bounds, in bytes, of the wspub_evicted_queue_bytes
	// histogram. A consumer evicted because its queue overflowed held close to
	// wspub.Options.MaxQueueBytes (1 MiB by default); one evicted for a write timeout may
	// hold less. Default: 1 KiB, 4 KiB, 16 KiB, 64 KiB, 256 KiB, 1 MiB, 4 MiB, 16 MiB.
	EvictionBuckets []float64
}

const defaultNamespace = "wspub"

// Default histogram buckets, as Options documents them: functions, not package
// variables, so that no one can change them.
func defaultFanoutBuckets() []float64 {
	return []float64{
		5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
		1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3,
	}
}

func defaultRecipientBuckets() []float64 {
	return []float64{0, 1, 4, 16, 64, 256, 1024, 4096, 16384, 65536}
}

func defaultEvictionBuckets() []float64 {
	return []float64{1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20}
}

// withDefaults returns a copy of opts with every unset field at its default, and the
// first problem found in it.
func (opts *Options) withDefaults() (Options, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Namespace == "" {
		o.Namespace = defaultNamespace
	}
	o.ConstLabels = maps.Clone(o.ConstLabels)
	var errs []error
	var err error
	o.FanoutBuckets, err = buckets("FanoutBuckets", o.FanoutBuckets, defaultFanoutBuckets)
	errs = append(errs, err)
	o.RecipientBuckets, err = buckets("RecipientBuckets", o.RecipientBuckets, defaultRecipientBuckets)
	errs = append(errs, err)
	o.EvictionBuckets, err = buckets("EvictionBuckets", o.EvictionBuckets, defaultEvictionBuckets)
	errs = append(errs, err)
	if _, ok := o.ConstLabels["le"]; ok {
		errs = append(errs, errors.New(`prommetrics: ConstLabels: "le" is reserved for histogram buckets`))
	}
	// The registry's own rules for names and labels, checked on a probe descriptor.
	probe := prometheus.NewDesc(prometheus.BuildFQName(o.Namespace, "", "connections"), "probe", nil, o.ConstLabels)
	if _, err := prometheus.NewConstMetric(probe, prometheus.GaugeValue, 0); err != nil {
		errs = append(errs, fmt.Errorf("prommetrics: Namespace %q or ConstLabels: %w", o.Namespace, err))
	}
	return o, errors.Join(errs...)
}

// buckets returns a sorted copy of b without duplicates (the order the histogram
// requires), or the default when b is empty.
func buckets(field string, b []float64, def func() []float64) ([]float64, error) {
	if len(b) == 0 {
		return def(), nil
	}
	if slices.ContainsFunc(b, math.IsNaN) {
		return def(), fmt.Errorf("prommetrics: %s: NaN is not a bucket bound", field)
	}
	b = slices.Clone(b)
	slices.Sort(b)
	return slices.Compact(b), nil
}
