package wspub

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wspub/wspub/internal/wstest"
)

// welcomeData is the data of a welcome message, with pointers for the limits that may be
// null.
type welcomeData struct {
	Conn   string `json:"conn"`
	Limits struct {
		MessageRate      *float64 `json:"messageRate"`
		MessageBurst     *int     `json:"messageBurst"`
		MaxSubscriptions *int     `json:"maxSubscriptions"`
		MaxChannels      *int     `json:"maxChannels"`
		MaxMessageBytes  *int     `json:"maxMessageBytes"`
		MaxChannelBytes  *int     `json:"maxChannelBytes"`
	} `json:"limits"`
}

// TestWelcomeIsTheFirstMessage: the welcome names the connection and the hub's default
// limits, and comes before what OnConnect sends and before any reply.
func TestWelcomeIsTheFirstMessage(t *testing.T) {
	var h *Hub
	ids := make(chan string, 1)
	h, url := startHub(t, &Options{OnConnect: func(ctx context.Context, c *Conn) error {
		ids <- c.ID()
		require.NoError(t, h.Subscribe(c.ID(), "user:1"))
		return c.Send(ctx, Message{Type: "hello"})
	}})
	c := wstest.Dial(t, url, &wstest.DialOptions{Timeout: testTimeout, KeepWelcome: true})
	c.SendText(`{"type":"ping","id":"1"}`)
	raw, err := c.NextRaw()
	require.NoError(t, err)
	id := <-ids
	assert.Equal(t, `{"type":"welcome","data":{"conn":"`+id+`","limits":{"messageRate":20,"messageBurst":50,`+
		`"maxSubscriptions":256,"maxChannels":256,"maxMessageBytes":32768,"maxChannelBytes":200}}}`, string(raw))
	assert.Equal(t, wstest.Msg{Type: "subscribed", Channel: "user:1"}, c.Next())
	assert.Equal(t, "hello", c.Next().Type)
	assert.Equal(t, wstest.Msg{Type: "pong", ID: "1"}, c.Next())
}

// TestWelcomeAnnouncesTheEffectiveLimits: the welcome carries the options as New made
// them; a limit that is off is null.
func TestWelcomeAnnouncesTheEffectiveLimits(t *testing.T) {
	ptr := func(v int) *int { return &v }
	tests := []struct {
		name                                string
		opts                                Options
		rate                                *float64
		burst, subs, channels, bytes, chans *int
	}{
		{"set", Options{MessageRate: 2.5, MessageBurst: 7, MaxSubscriptionsPerConn: 10, MaxSubscribeChannels: 4,
			MaxMessageBytes: 4096, MaxChannelBytes: 64},
			func() *float64 { v := 2.5; return &v }(), ptr(7), ptr(10), ptr(4), ptr(4096), ptr(64)},
		{"batch follows the subscription limit", Options{MaxSubscriptionsPerConn: 10},
			func() *float64 { v := 20.0; return &v }(), ptr(50), ptr(10), ptr(10), ptr(32768), ptr(200)},
		{"off", Options{MessageRate: -1, MaxSubscriptionsPerConn: -1, MaxSubscribeChannels: -1},
			nil, nil, nil, nil, ptr(32768), ptr(200)},
		{"no subscription limit: batches of 256", Options{MaxSubscriptionsPerConn: -1},
			func() *float64 { v := 20.0; return &v }(), ptr(50), nil, ptr(256), ptr(32768), ptr(200)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, url := startHub(t, &tt.opts)
			w := wstest.Data[welcomeData](t, dial(t, url).Welcome())
			assert.NotEmpty(t, w.Conn)
			l := w.Limits
			assert.Equal(t, tt.rate, l.MessageRate, "messageRate")
			assert.Equal(t, tt.burst, l.MessageBurst, "messageBurst")
			assert.Equal(t, tt.subs, l.MaxSubscriptions, "maxSubscriptions")
			assert.Equal(t, tt.channels, l.MaxChannels, "maxChannels")
			assert.Equal(t, tt.bytes, l.MaxMessageBytes, "maxMessageBytes")
			assert.Equal(t, tt.chans, l.MaxChannelBytes, "maxChannelBytes")
		})
	}
}

// TestWelcomeIsReserved: applications cannot send or handle "welcome", and a client that
// sends one gets unknown_type.
func TestWelcomeIsReserved(t *testing.T) {
	h, url := startHub(t, nil)
	ctx := context.Background()
	assert.ErrorIs(t, h.Publish(ctx, "a", Message{Type: "welcome"}), ErrReservedType)
	assert.ErrorIs(t, h.Broadcast(ctx, Message{Type: "welcome"}), ErrReservedType)
	assert.ErrorIs(t, h.Handle("welcome", func(context.Context, *Conn, ClientMessage) error { return nil }), ErrReservedType)
	c := dial(t, url)
	c.SendText(`{"type":"welcome","id":"w"}`)
	c.ExpectError(CodeUnknownType, "w")
	c.NothingPending("p")
}

// TestReplyAnswersTheRequest: Conn.Reply sends a message with the id of the client
// message it answers, and without one when that had none; its errors are Send's.
func TestReplyAnswersTheRequest(t *testing.T) {
	h, url := startHub(t, &Options{MaxQueueBytes: 2048})
	require.NoError(t, h.Handle("lookup", func(ctx context.Context, c *Conn, m ClientMessage) error {
		return c.Reply(ctx, m, Message{Type: "found", Data: map[string]string{"q": string(m.Data)}})
	}))
	var errs []error
	require.NoError(t, h.Handle("bad", func(ctx context.Context, c *Conn, m ClientMessage) error {
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		errs = []error{
			c.Reply(ctx, m, Message{Type: "subscribed"}),
			c.Reply(ctx, m, Message{Type: "x", Data: make(chan int)}),
			c.Reply(ctx, m, Message{Type: "x", Data: string(make([]byte, 4096))}),
			c.Reply(cancelled, m, Message{Type: "x"}),
		}
		return c.Reply(ctx, m, Message{Type: "done"})
	}))
	c := dial(t, url)
	c.SendText(`{"type":"lookup","id":"r\"1","data":7}`)
	assert.Equal(t, wstest.Msg{Type: "found", ID: "r\"1", Data: []byte(`{"q":"7"}`)}, c.Next())
	c.SendText(`{"type":"lookup","data":8}`)
	raw, err := c.NextRaw()
	require.NoError(t, err)
	assert.Equal(t, `{"type":"found","data":{"q":"8"}}`, string(raw), "no id: none is sent")
	c.SendText(`{"type":"bad","id":"b"}`)
	assert.Equal(t, wstest.Msg{Type: "done", ID: "b"}, c.Next())
	require.Len(t, errs, 4)
	assert.ErrorIs(t, errs[0], ErrReservedType)
	assert.ErrorIs(t, errs[1], ErrInvalidData)
	assert.ErrorIs(t, errs[2], ErrMessageTooLarge)
	assert.ErrorIs(t, errs[3], context.Canceled)
	c.NothingPending("p")
}

// TestReplyWithIDKeepsTheEnvelope: withID adds the id to an envelope without touching
// the original bytes.
func TestReplyWithIDKeepsTheEnvelope(t *testing.T) {
	b, err := encodeMessage("", Message{Type: "t", Data: 1})
	require.NoError(t, err)
	orig := string(b)
	out := withID(b, "7")
	assert.Equal(t, `{"type":"t","data":1,"id":"7"}`, string(out))
	assert.Equal(t, orig, string(b))
	assert.Equal(t, fmt.Sprint(orig), string(withID(b, "")))
	checkServerFrame(t, out)
}
