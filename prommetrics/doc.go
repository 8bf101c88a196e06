// Package prommetrics exports a wspub.Hub's metrics to Prometheus: every field of
// Hub.Stats as a gauge or a counter, and histograms of fan-out times, fan-out sizes and
// the queues of evicted slow consumers, measured through wspub.Options.Observer.
//
// Create the Observer first, since the hub takes it in its Options, then register the
// collector on your own registry (this package never touches the global one):
//
//	import (
//		"github.com/prometheus/client_golang/prometheus"
//		"github.com/prometheus/client_golang/prometheus/promhttp"
//	)
//
//	obs := prommetrics.NewObserver(nil)
//	hub := wspub.New(&wspub.Options{Observer: obs})
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(prommetrics.NewCollector(hub, obs, nil))
//	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// The collector reads Hub.Stats once per scrape: it costs the hub nothing between
// scrapes. Several hubs can share a registry when each has its own Observer and its own
// Options.ConstLabels, such as {"hub": "chat"} and {"hub": "feeds"}.
package prommetrics
