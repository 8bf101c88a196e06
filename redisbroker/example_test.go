package redisbroker_test

import (
	"context"
	"errors"
	"log"
	"log/slog"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/wspub/wspub"
	"github.com/wspub/wspub/redisbroker"
)

// Every node runs the same code; a load balancer spreads the clients over the nodes,
// and a Publish on any node reaches the subscribers of all of them.
func ExampleNew() {
	rdb := redis.NewClient(&redis.Options{
		Addr:                  "127.0.0.1:6379",
		MaxRetries:            -1,   // at-most-once: never publish a message twice
		ContextTimeoutEnabled: true, // optional: go-redis gives up commands at their deadline itself
	})
	defer rdb.Close() // after the hub, which closes the broker

	hub := wspub.New(&wspub.Options{
		Broker: redisbroker.New(rdb, &redisbroker.Options{
			Prefix: "myapp:",
			Logger: slog.Default(), // redis_broker_down, redis_broker_up
		}),
	})
	mux := http.NewServeMux()
	mux.Handle("/ws", hub)
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !hub.Stats().BrokerUp {
			http.Error(w, "redis unreachable", http.StatusServiceUnavailable)
		}
	})
	srv := &http.Server{Addr: ":8080", Handler: mux}
	go func() {
		if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			log.Print(err)
		}
	}()

	// ... later, anywhere in the application:
	_ = hub.Publish(context.Background(), "news", wspub.Message{Type: "headline", Data: "hello"})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	_ = hub.Shutdown(ctx)
}
