// Package redisbroker connects the wspub hubs of several nodes through Redis pub/sub, so
// that a message published on any node reaches the subscribers connected to every node.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	hub := wspub.New(&wspub.Options{Broker: redisbroker.New(rdb, nil)})
//
// Give each hub its own Broker. Every wspub channel is one Redis channel, Options.Prefix
// followed by the channel's name; the hub's payloads are published as they are. A node
// subscribes at Redis only to the channels it has local subscribers for, all on one
// subscription connection, which one goroutine reads in order: the messages one node
// publishes to a channel reach the other nodes in the order they were published.
//
// When Redis is unreachable, Publish fails (the hub's own subscribers still get the
// message) and the Broker reconnects by itself, with a capped exponential backoff, then
// subscribes again to every channel it had. Up and Outages report the connection's
// health; the hub shows them in Stats.BrokerUp and Stats.BrokerOutages.
//
// # Client settings
//
// The Broker uses the client as it is configured; three settings matter:
//
//   - MaxRetries. Delivery is at-most-once, as wspub's: a message published while a
//     node's subscription connection is down is lost for that node. But go-redis retries
//     a failed command up to MaxRetries times (3 by default), and a PUBLISH whose reply
//     was lost may so reach subscribers twice (never out of order: the retry finishes
//     before Publish returns). Use MaxRetries: -1 if a duplicate is worse than a loss.
//   - DialerRetries. While Redis refuses connections, each Publish dials up to
//     DialerRetries times (5 by default, 100ms apart), and so lasts until its context
//     ends (the hub's BrokerTimeout). With DialerRetries: 1 it fails at once.
//   - ContextTimeoutEnabled. Without it, go-redis bounds the handshake of a new
//     connection by DialTimeout and ReadTimeout rather than by the caller's context: a
//     Subscribe or a health check that reconnects through a network that drops packets
//     may then take that long. Set it to true to have contexts bound them.
package redisbroker
