package prommetrics_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/wspub/wspub"
	"github.com/wspub/wspub/prommetrics"
)

// The Observer goes into the hub's Options, the collector onto your own registry, and
// the registry behind /metrics.
func ExampleNewCollector() {
	obs := prommetrics.NewObserver(nil)
	hub := wspub.New(&wspub.Options{Observer: obs})
	defer hub.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(prommetrics.NewCollector(hub, obs, nil))

	mux := http.NewServeMux()
	mux.Handle("/ws", hub)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	_ = hub.Publish(context.Background(), "news", wspub.Message{Type: "headline", Data: "hello"})

	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		line := lines.Text()
		for _, prefix := range []string{"wspub_connections ", "wspub_messages_published_total ", "wspub_publish_fanout_seconds_count ", "wspub_broker_up "} {
			if strings.HasPrefix(line, prefix) {
				fmt.Println(line)
			}
		}
	}
	// Output:
	// wspub_broker_up 1
	// wspub_connections 0
	// wspub_messages_published_total 1
	// wspub_publish_fanout_seconds_count 1
}
