package main

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wspub/wspub"
	"github.com/wspub/wspub/prommetrics"
)

// newHub returns the example's hub, measured for Prometheus, and the handler of GET
// /metrics: every field of hub.Stats() and the fan-out histograms, from a registry of
// the example's own (see the prommetrics module).
func newHub(logger *slog.Logger) (*wspub.Hub, http.Handler, error) {
	obs := prommetrics.NewObserver(nil)
	hub := wspub.New(&wspub.Options{Logger: logger, Observer: obs})
	reg := prometheus.NewRegistry()
	if err := reg.Register(prommetrics.NewCollector(hub, obs, nil)); err != nil {
		_ = hub.Close()
		return nil, nil, err
	}
	return hub, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), nil
}
