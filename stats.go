package wspub

import "sync/atomic"

// Stats is a point-in-time view of a Hub. Gauges describe the present; counters only grow
// over the hub's life.
type Stats struct {
	Connections   int // open connections (gauge)
	Channels      int // channels with at least one local subscriber (gauge)
	Subscriptions int // connection-channel pairs (gauge)
	Users         int // distinct non-empty user IDs connected (gauge)

	Accepted      uint64 // connections upgraded
	Rejected      uint64 // requests refused before the upgrade (shutting down, origin, token, plain GETs such as wspub.js's preflight, ...), each one, logged or not
	Published     uint64 // calls to Publish, Broadcast and SendToUser that were accepted
	Delivered     uint64 // messages written to a connection's socket (replies included)
	Frames        uint64 // WebSocket frames written; Delivered/Frames is the batching factor
	Dropped       uint64 // messages queued for a connection but never written (DropOldest, eviction, close)
	SlowEvictions uint64 // connections closed because their send queue overflowed or a write timed out
	Reaped        uint64 // connections closed by the heartbeat for missing pongs
	Invalid       uint64 // client messages answered with an error reply
	RateLimited   uint64 // client messages refused by the rate limit (Options.MessageRate)
	PolicyCloses  uint64 // connections closed with 1008 for invalid messages or rate abuse
	FrameFloods   uint64 // connections slowed down for sending frames faster than Options.MaxFrameRate
	Panics        uint64 // handler and hook panics recovered
	Disconnects   uint64 // connections that have ended, for any reason

	// With Options.Broker (all zero without one, and BrokerUp true):
	BrokerUp       bool   // the broker connection is up (for readiness probes)
	BrokerOutages  uint64 // times the broker connection was lost (BrokerHealth)
	BrokerErrors   uint64 // broker publishes, subscribes and unsubscribes that failed
	BrokerReceived uint64 // messages from other nodes fanned out here
	BrokerInvalid  uint64 // broker payloads that were not wspub's, or too large for this node's send queues, and were dropped
	BrokerDropped  uint64 // messages the broker adapter lost on their way in (BrokerDrops)
}

// counters are the hub's atomic counters behind Stats.
type counters struct {
	accepted, rejected, published, delivered, frames, dropped,
	slowEvictions, reaped, invalid, rateLimited, policyCloses, frameFloods, panics, disconnects,
	brokerErrors, brokerReceived, brokerInvalid atomic.Uint64
}
