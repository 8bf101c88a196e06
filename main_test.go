package wspub

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind: every reader, writer,
// pinger and heartbeat of every hub must have exited.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
