package natsbroker

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind: the Broker's own, the
// hubs', and nats.go's, which end once every test has closed its connections.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
