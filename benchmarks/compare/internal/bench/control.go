// Package bench puts every peer server of the side-by-side harness behind the control
// surface of wspub-bench serve, github.com/wspub/wspub/internal/benchctl (POST /publish
// publishes numbered, timestamped messages, GET /stats reports the runtime's memory and
// goroutines), and holds the wspub-protocol subscribe request and reply that the load
// tool speaks and the envelope the peers that speak it send.
package bench

import (
	"context"
	"net/http"

	"github.com/wspub/wspub/internal/benchctl"
)

// Server is one peer behind the control surface.
type Server interface {
	// ServeHTTP serves the WebSocket endpoint, /ws.
	http.Handler
	// Publish sends msg to every subscriber of channel, the way the library's users
	// publish. msg is the server's to keep.
	Publish(ctx context.Context, channel string, msg []byte) error
	// Layout is what Publish is given around the bench data for channel.
	Layout(channel string) benchctl.Layout
	// Conns is the number of open WebSocket connections.
	Conns() int
	// Close closes every connection and waits for the server's goroutines.
	Close() error
}

// HubStats is the "hub" of a peer's GET /stats: its connection count, under the name of
// wspub's Stats field, which the load tool reads.
type HubStats struct {
	Connections int
}

// Stats is the answer of a peer's GET /stats.
type Stats = benchctl.Stats[HubStats]

// NewHandler serves s at /ws with the control surface of wspub-bench serve beside it
// (see benchctl): POST /publish calls s.Publish with a new message each time, and a
// failed Publish answers 500; GET /stats reports s.Conns as the hub's Connections.
func NewHandler(s Server) http.Handler {
	return benchctl.NewMux(s,
		&benchctl.Publisher{Layout: s.Layout, Publish: s.Publish},
		benchctl.StatsHandler(func() HubStats { return HubStats{Connections: s.Conns()} }))
}
