// Package redisbroker connects the wspub hubs of several nodes through Redis pub/sub, so
// that a message published on any node reaches the subscribers connected to every node.
//
//	import "github.com/redis/go-redis/v9"
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
// # An unresponsive Redis
//
// Every Publish, Subscribe and Unsubscribe returns when its context ends at the latest
// (the hub gives each one its BrokerTimeout, 2s by default), with any client, its
// timeouts as they are: also when Redis accepts connections but does not answer (a
// paused process, a network that drops packets), where go-redis on its own waits up to
// its ReadTimeout (5s by default) per reply and as long again for a new connection's
// handshake, unless the client has ContextTimeoutEnabled. So during an outage a
// publishing goroutine spends at most BrokerTimeout per Publish, and its node's own
// subscribers, served before the broker is asked, keep getting its messages.
//
// Publish runs its command in a goroutine of its own, which the caller leaves when its
// context ends; go-redis finishes it in the background. At most
// Options.MaxPendingPublishes (default 64) are under way at once: the Broker's
// goroutines, payloads and pooled connections stay bounded however long the outage and
// however many Publishes are asked for, and go back to none as go-redis gives the
// commands up; when all of them wait for a Redis that does not answer, Publish fails at
// once with ErrStalled. Subscribe and Unsubscribe record the change and wait for its
// confirmation; one goroutine sends the commands, and the changes recorded meanwhile
// go out together as soon as it can. When Redis answers again, the commands under way
// complete at once, the reader's health check reconnects the subscription if it was
// replaced, and everything recorded is subscribed again: nothing needs to be called.
//
// A Publish that failed with its context is not undone: Redis may still carry out a
// PUBLISH it had received once it answers again, after the messages of later
// Publishes. The messages of the Publishes that succeeded arrive in the order they were
// published.
//
// # Client settings
//
// The Broker uses the client as it is configured; three settings matter:
//
//   - MaxRetries. Delivery is at-most-once, as wspub's: a message published while a
//     node's subscription connection is down is lost for that node. But go-redis retries
//     a failed command up to MaxRetries times (3 by default), while the context lasts,
//     and a PUBLISH whose reply was lost may so reach subscribers twice. Use
//     MaxRetries: -1 if a duplicate is worse than a loss.
//   - DialerRetries. While Redis refuses connections, each Publish dials up to
//     DialerRetries times (5 by default, 100ms apart), and so lasts until its context
//     ends (the hub's BrokerTimeout). With DialerRetries: 1 it fails at once.
//   - ContextTimeoutEnabled. The bounds above hold without it. With it, go-redis gives
//     up a command at its context's deadline rather than after ReadTimeout: a Publish
//     left by its caller frees its goroutine and pooled connection sooner, and Close,
//     which may have to wait for the subscription connection's handshake, waits at most
//     HealthCheckInterval rather than ReadTimeout.
package redisbroker
