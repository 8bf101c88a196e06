package prommetrics

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind: hubs, servers and
// clients must all have stopped.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
