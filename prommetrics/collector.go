package prommetrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/wspub/wspub"
)

// statMetric is one field of wspub.Stats as a metric.
type statMetric struct {
	name  string // without the namespace
	help  string
	typ   prometheus.ValueType
	value func(*wspub.Stats) float64
}

func gauge(name, help string, v func(*wspub.Stats) int) statMetric {
	return statMetric{name, help, prometheus.GaugeValue, func(s *wspub.Stats) float64 { return float64(v(s)) }}
}

func counter(name, help string, v func(*wspub.Stats) uint64) statMetric {
	return statMetric{name, help, prometheus.CounterValue, func(s *wspub.Stats) float64 { return float64(v(s)) }}
}

// statMetrics lists the metrics read from Hub.Stats, in the order of its fields.
func statMetrics() []statMetric {
	return []statMetric{
		gauge("connections", "Open WebSocket connections.",
			func(s *wspub.Stats) int { return s.Connections }),
		gauge("channels", "Channels with at least one local subscriber.",
			func(s *wspub.Stats) int { return s.Channels }),
		gauge("subscriptions", "Subscriptions: connection-channel pairs.",
			func(s *wspub.Stats) int { return s.Subscriptions }),
		gauge("users", "Distinct authenticated users connected.",
			func(s *wspub.Stats) int { return s.Users }),

		counter("connections_accepted_total", "Connections upgraded to WebSocket.",
			func(s *wspub.Stats) uint64 { return s.Accepted }),
		counter("connections_rejected_total", "Upgrade requests refused (shutting down, origin, authentication, limits, bad handshake).",
			func(s *wspub.Stats) uint64 { return s.Rejected }),
		counter("messages_published_total", "Messages accepted by Publish, Broadcast, SendToUser and client publishes.",
			func(s *wspub.Stats) uint64 { return s.Published }),
		counter("messages_delivered_total", "Messages written to a connection's socket, replies included.",
			func(s *wspub.Stats) uint64 { return s.Delivered }),
		counter("frames_written_total", "WebSocket frames written; messages delivered per frame is the batching factor.",
			func(s *wspub.Stats) uint64 { return s.Frames }),
		counter("messages_dropped_total", "Messages queued for a connection but never written (DropOldest, eviction, close).",
			func(s *wspub.Stats) uint64 { return s.Dropped }),
		counter("slow_consumer_evictions_total", "Connections closed because their send queue overflowed or a write timed out.",
			func(s *wspub.Stats) uint64 { return s.SlowEvictions }),
		counter("connections_reaped_total", "Connections closed by the heartbeat for missing pongs.",
			func(s *wspub.Stats) uint64 { return s.Reaped }),
		counter("client_errors_total", "Client messages answered with an error reply.",
			func(s *wspub.Stats) uint64 { return s.Invalid }),
		counter("rate_limited_total", "Client messages refused by the rate limit.",
			func(s *wspub.Stats) uint64 { return s.RateLimited }),
		counter("policy_closes_total", "Connections closed with 1008 (policy violation) for invalid messages or rate abuse.",
			func(s *wspub.Stats) uint64 { return s.PolicyCloses }),
		counter("frame_floods_total", "Connections slowed down for sending WebSocket frames faster than MaxFrameRate.",
			func(s *wspub.Stats) uint64 { return s.FrameFloods }),
		counter("handler_panics_total", "Panics recovered in handlers and hooks.",
			func(s *wspub.Stats) uint64 { return s.Panics }),
		counter("disconnects_total", "Connections that have ended, for any reason.",
			func(s *wspub.Stats) uint64 { return s.Disconnects }),

		gauge("broker_up", "1 when the broker connection is up (always without a broker), 0 when it is down.",
			func(s *wspub.Stats) int {
				if s.BrokerUp {
					return 1
				}
				return 0
			}),
		counter("broker_outages_total", "Times the broker connection was lost.",
			func(s *wspub.Stats) uint64 { return s.BrokerOutages }),
		counter("broker_errors_total", "Broker publishes, subscribes and unsubscribes that failed.",
			func(s *wspub.Stats) uint64 { return s.BrokerErrors }),
		counter("broker_received_total", "Messages from other nodes fanned out here.",
			func(s *wspub.Stats) uint64 { return s.BrokerReceived }),
		counter("broker_invalid_total", "Broker payloads that were not wspub's, or too large for this node's send queues, and were dropped.",
			func(s *wspub.Stats) uint64 { return s.BrokerInvalid }),
		counter("broker_dropped_total", "Messages the broker adapter lost on their way in.",
			func(s *wspub.Stats) uint64 { return s.BrokerDropped }),
	}
}

// NewCollector returns a collector of hub's metrics, to register on your registry: the
// fields of hub.Stats(), read once per scrape, and the histograms of obs. obs is the
// Observer the hub was created with (wspub.Options.Observer), or nil for no histograms.
// opts names and labels the Stats metrics; nil means obs's Options (or defaults
// without obs), which is what you want unless you label them differently on purpose.
//
// A nil hub or invalid options make the registry refuse the collector with an error.
func NewCollector(hub *wspub.Hub, obs *Observer, opts *Options) prometheus.Collector {
	var o Options
	var errs []error
	if hub == nil {
		errs = append(errs, errors.New("prommetrics: NewCollector needs a hub"))
	}
	if obs != nil {
		errs = append(errs, obs.err)
	}
	if opts == nil && obs != nil {
		o = obs.opts
	} else {
		var err error
		o, err = opts.withDefaults()
		errs = append(errs, err)
	}
	c := &collector{hub: hub, obs: obs, metrics: statMetrics()}
	if c.err = errors.Join(errs...); c.err != nil {
		return c
	}
	c.descs = make([]*prometheus.Desc, len(c.metrics))
	for i, m := range c.metrics {
		c.descs[i] = prometheus.NewDesc(prometheus.BuildFQName(o.Namespace, "", m.name), m.help, nil, o.ConstLabels)
	}
	return c
}

// collector is the prometheus.Collector NewCollector returns.
type collector struct {
	hub     *wspub.Hub
	obs     *Observer
	metrics []statMetric
	descs   []*prometheus.Desc // of metrics
	err     error              // reported to the registry instead of any metric
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	if c.err != nil {
		ch <- prometheus.NewInvalidDesc(c.err)
		return
	}
	for _, d := range c.descs {
		ch <- d
	}
	if c.obs != nil {
		for _, h := range c.obs.histograms() {
			h.Describe(ch)
		}
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	if c.err != nil {
		ch <- prometheus.NewInvalidMetric(prometheus.NewInvalidDesc(c.err), c.err)
		return
	}
	st := c.hub.Stats()
	for i, m := range c.metrics {
		// The descriptors were validated by withDefaults: MustNewConstMetric cannot fail.
		ch <- prometheus.MustNewConstMetric(c.descs[i], m.typ, m.value(&st))
	}
	if c.obs != nil {
		for _, h := range c.obs.histograms() {
			h.Collect(ch)
		}
	}
}
