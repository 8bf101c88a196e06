package redisbroker_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind: the reader of every
// Broker, every hub goroutine and every go-redis goroutine must have exited.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
