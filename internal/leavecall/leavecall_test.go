package leavecall

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestRunReturnsTheCallsResult: a call that returns in time gives its own result.
func TestRunReturnsTheCallsResult(t *testing.T) {
	g := New(2)
	boom := errors.New("boom")
	assert.NoError(t, g.Run(context.Background(), nil, func() error { return nil }))
	assert.ErrorIs(t, g.Run(context.Background(), nil, func() error { return boom }), boom)
}

// TestCallersLeaveStuckCalls: a caller leaves a call that outlives its context; once
// every slot is held by a left call, Run fails at once with ErrStalled; when the calls
// return, the group is usable again.
func TestCallersLeaveStuckCalls(t *testing.T) {
	g := New(2)
	release := make(chan struct{})
	stuck := func() error { <-release; return nil }
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		err := g.Run(ctx, nil, stuck)
		cancel()
		assert.ErrorIs(t, err, ErrLeft)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	}
	start := time.Now()
	assert.ErrorIs(t, g.Run(context.Background(), nil, stuck), ErrStalled)
	assert.Less(t, time.Since(start), 10*time.Millisecond, "at once")
	close(release)
	require.Eventually(t, func() bool { return g.Run(context.Background(), nil, func() error { return nil }) == nil },
		5*time.Second, time.Millisecond)
}

// TestRunWaitsForASlot: with every slot held by calls whose callers still wait, a new
// caller waits for a slot until its context ends (ErrFull) or the owner closes
// (ErrClosed).
func TestRunWaitsForASlot(t *testing.T) {
	g := New(1)
	release, started := make(chan struct{}), make(chan struct{})
	go func() { _ = g.Run(context.Background(), nil, func() error { close(started); <-release; return nil }) }()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := g.Run(ctx, nil, func() error { return nil })
	assert.ErrorIs(t, err, ErrFull)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	closed := make(chan struct{})
	close(closed)
	assert.ErrorIs(t, g.Run(context.Background(), closed, func() error { return nil }), ErrClosed)
	close(release)
}
