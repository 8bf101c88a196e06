package redisbroker

// HoldCommands takes the lock that serialises subscription commands, as a caller stuck
// dialling Redis would hold it, until the returned function is called.
func HoldCommands(b *Broker) (release func()) {
	b.cmdSem <- struct{}{}
	return func() { <-b.cmdSem }
}

// DefaultMaxPendingPublishes is Options.MaxPendingPublishes by default.
const DefaultMaxPendingPublishes = defaultMaxPendingPublishes
