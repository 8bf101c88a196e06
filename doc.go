// Package wspub is an embeddable WebSocket pub/sub hub: browsers subscribe to channels
// over one WebSocket, and application code publishes to those channels.
//
// A Hub is an http.Handler. Mount it, then publish from anywhere:
//
//	hub := wspub.New(nil)
//	mux.Handle("/ws", hub)
//	err := hub.Publish(ctx, "task:42", wspub.Message{Type: "progress", Data: p})
//
// Clients speak the JSON protocol in PROTOCOL.md (subprotocol "wspub.v1"): they send
// subscribe, unsubscribe and ping messages, and custom types the application handles with
// Hub.Handle; the server answers with subscribed, unsubscribed, pong and error replies
// and delivers application messages as {"type":...,"channel":...,"data":...}. A frame may
// carry several messages separated by '\n' when they were already queued together.
//
// # Guarantees
//
// Delivery is at-most-once. Messages one goroutine publishes to a channel reach each
// subscriber in publish order. Publish encodes a message once and never waits for a
// socket: each connection has a send queue bounded in bytes (Options.MaxQueueBytes), and
// a connection that stops reading is evicted with close code 1013 and reason "slow
// consumer" (or, with the DropOldest policy, loses its oldest queued messages). Every
// drop and eviction is counted in Stats and logged; none is silent.
//
// # Resources
//
// An idle connection has one goroutine, its reader, and costs about 10 KB of heap and
// stack, whatever its headers: it keeps at most 256 bytes of each request string
// (Conn.Origin, Conn.UserAgent, Conn.RemoteAddr). A writer goroutine runs only while the
// connection has something to send, and one heartbeat goroutine per hub pings every
// connection through its writer and reaps those that do not answer with the ping's
// payload; no goroutine waits for a pong. Disconnects remove a connection from its
// channels in O(its subscriptions), and channels without subscribers are deleted.
// However a connection ends (close handshake, FIN, RST, reaped, evicted, closed by the
// application, Close or Shutdown), nothing of it stays: no goroutine, no map entry, no
// heap; only a Handler that ignores its cancelled context keeps its own goroutine, and
// what it references, until it returns.
//
// A client's input is bounded at every level: frames of every kind by
// Options.MaxFrameRate (a flooding client is read no faster, so it slows only itself),
// messages by MessageRate, MaxMessageBytes and MaxInvalidMessages.
//
// # Security
//
// By default only same-origin pages may connect (Options.OriginPatterns widens it), and
// every client frame passes a strict decoder before routing. Options.Authenticate
// establishes an Identity before the upgrade (see SubprotocolToken for browsers),
// Options.Authorize is asked on every subscribe and client publish, and quotas bound
// connections (per hub and per user), subscriptions, message size and message rate.
//
// # Scaling out
//
// With Options.Broker, hubs of several processes share channels through Redis
// (github.com/wspub/wspub/redisbroker) or NATS (github.com/wspub/wspub/natsbroker):
// Publish, Broadcast and SendToUser reach clients connected to any node, exactly once
// each and in order per publisher. Delivery stays at-most-once: what is published
// while the broker is down reaches only the publishing node's clients, and Publish
// says so with an error wrapping ErrBroker. MemoryBus connects hubs in one process.
//
// # Shutdown
//
// http.Server.Shutdown does not close hijacked connections such as WebSockets: call
// Hub.Shutdown too. It sends every client close 1001 ("going away"), answers new upgrade
// requests with 503, cancels every connection's context, and returns when every
// goroutine of the hub has exited, or by its deadline plus ShutdownGrace: application
// code that ignores its cancelled context is logged, not waited for.
//
// The library never prints; it logs through the *slog.Logger in Options.Logger.
package wspub
