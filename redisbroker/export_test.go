package redisbroker

// HoldCommands takes the lock that the commander holds while it sends subscription
// commands, as if it were stuck dialling Redis, until the returned function is called.
func HoldCommands(b *Broker) (release func()) {
	b.cmdSem <- struct{}{}
	return func() { <-b.cmdSem }
}

// DefaultMaxPendingPublishes is Options.MaxPendingPublishes by default.
const DefaultMaxPendingPublishes = defaultMaxPendingPublishes
