package wspub

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wspub/wspub/internal/wstest"
)

// TestMessageLargerThanAQueueIsThePublishersError: a client publish larger than
// MaxQueueBytes gets a message_too_large reply and reaches no one, instead of evicting
// every subscriber; New says at once that such publishes will be refused.
func TestMessageLargerThanAQueueIsThePublishersError(t *testing.T) {
	logger, logs := wstest.NewLogger()
	conns := make(chan *Conn, 5)
	h, url := startHub(t, &Options{Logger: logger, MaxQueueBytes: 4096, AllowClientPublish: true,
		OnConnect: func(_ context.Context, c *Conn) error { conns <- c; return nil }})
	adjusted := logs.Events("wspub_options_adjusted")
	require.Len(t, adjusted, 1)
	assert.Contains(t, adjusted[0]["change"], "message_too_large")

	subs := make([]*wstest.Conn, 5)
	for i := range subs {
		subs[i] = dial(t, url)
		subs[i].Subscribe("room", "s")
	}
	big := strings.Repeat("x", 8<<10)
	subs[0].Send(map[string]any{"type": "publish", "channel": "room", "id": "big", "data": big})
	e := subs[0].ExpectError(CodeMessageTooLarge, "big")
	assert.Contains(t, e.Message, "4096")
	subs[0].Send(map[string]any{"type": "publish", "channel": "room", "id": "small", "data": "hi"})
	for _, c := range subs {
		assert.Equal(t, `"hi"`, string(c.Expect("publish").Data), "the subscriber is still there, and got no big message")
	}
	st := h.Stats()
	assert.Zero(t, st.SlowEvictions)
	assert.Equal(t, 5, st.Connections)
	assert.ErrorIs(t, h.Publish(context.Background(), "room", Message{Type: "x", Data: big}), ErrMessageTooLarge)
	assert.ErrorIs(t, (<-conns).Send(context.Background(), Message{Type: "x", Data: big}), ErrMessageTooLarge)
	subs[0].Expect("published")
	subs[0].NothingPending("n")
	assert.Zero(t, h.Stats().SlowEvictions)
}

// TestOptionsThatCannotWorkAreCorrected: New raises a MaxQueueBytes that could not hold
// the protocol's own replies, and a MaxFrameRate below what MessageRate allows, and logs
// each change.
func TestOptionsThatCannotWorkAreCorrected(t *testing.T) {
	logger, logs := wstest.NewLogger()
	h, url := startHub(t, &Options{Logger: logger, MaxQueueBytes: 100, MessageRate: 100, MaxFrameRate: 50})
	changes := logs.Events("wspub_options_adjusted")
	require.Len(t, changes, 2, "%v", changes)
	assert.Contains(t, changes[0]["change"], "MaxFrameRate 50 raised to twice MessageRate: 200")
	assert.Contains(t, changes[1]["change"], "MaxQueueBytes 100 raised to 1424")
	c := dial(t, url)
	c.Subscribe(strings.Repeat("c", 200), "s") // the longest name's reply fits
	assert.Zero(t, h.Stats().SlowEvictions)
}

// TestBrokerMessageLargerThanThisNodesQueues: a node whose queues are smaller than the
// publishing node's drops the message (counted as BrokerInvalid) and keeps its
// subscribers; the publishing node delivers it.
func TestBrokerMessageLargerThanThisNodesQueues(t *testing.T) {
	bus := NewMemoryBus()
	big, bigURL := startHub(t, &Options{Broker: bus.Broker()})
	small, smallURL := startHub(t, &Options{Broker: bus.Broker(), MaxQueueBytes: 4096})
	onBig, onSmall := dial(t, bigURL), dial(t, smallURL)
	onBig.Subscribe("room", "s")
	onSmall.Subscribe("room", "s")
	require.NoError(t, big.Publish(context.Background(), "room", Message{Type: "x", Data: strings.Repeat("y", 8<<10)}))
	require.NoError(t, big.Publish(context.Background(), "room", Message{Type: "x", Data: "small"}))
	assert.Len(t, onBig.Expect("x").Data, 8<<10+2)
	onBig.Expect("x")
	assert.Equal(t, `"small"`, string(onSmall.Expect("x").Data))
	st := small.Stats()
	assert.Equal(t, uint64(1), st.BrokerInvalid)
	assert.Equal(t, uint64(1), st.BrokerReceived)
	assert.Zero(t, st.SlowEvictions)
}
