package docs

// The modules the documentation's Go snippets use: importing them here keeps them in
// this module's go.mod and go.sum, so the snippets compile offline against exactly
// these versions.
import (
	_ "github.com/coder/websocket"
	_ "github.com/nats-io/nats.go"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/wspub/wspub"
	_ "github.com/wspub/wspub/natsbroker"
	_ "github.com/wspub/wspub/prommetrics"
	_ "github.com/wspub/wspub/redisbroker"
)
