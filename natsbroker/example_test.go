package natsbroker_test

import (
	"context"
	"log"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/wspub/wspub"
	"github.com/wspub/wspub/natsbroker"
)

// Each node of the application connects to NATS and gives its hub a Broker; a Publish
// on any node reaches the subscribers of every node. (Not run: it needs a NATS server.)
func ExampleNew() {
	nc, err := nats.Connect("nats://127.0.0.1:4222",
		nats.MaxReconnects(-1),                   // keep trying: a closed connection is down for good
		nats.ReconnectWait(500*time.Millisecond), // between attempts
		nats.RetryOnFailedConnect(true),          // start even while NATS is down
	)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close() // after the hub: deferred calls run last in, first out

	broker, err := natsbroker.New(nc, &natsbroker.Options{Prefix: "myapp.ws", Logger: slog.Default()})
	if err != nil {
		log.Fatal(err)
	}
	hub := wspub.New(&wspub.Options{Broker: broker})
	defer hub.Close() // closes the broker too

	http.Handle("/ws", hub)
	go func() { _ = http.ListenAndServe("127.0.0.1:8080", nil) }()

	if err := hub.Publish(context.Background(), "news", wspub.Message{Type: "headline", Data: "hello"}); err != nil {
		// This node's subscribers got it; the other nodes may not have (wspub.ErrBroker).
		log.Print(err)
	}
}
