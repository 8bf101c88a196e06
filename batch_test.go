package wspub

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/wspub/wspub/internal/wstest"
)

// TestBatchSubscribeRepliesPerChannel: a subscribe with "channels" handles each name as
// a subscribe of its own, asking Authorize for each, and replies for each, in order, with
// the request's id and the channel; duplicates are idempotent; the names beyond the
// subscription limit get too_many_subscriptions.
func TestBatchSubscribeRepliesPerChannel(t *testing.T) {
	var asked []string
	h, url := startHub(t, &Options{Authenticate: userFromQuery, MaxSubscriptionsPerConn: 3, MaxSubscribeChannels: 20,
		MaxChannelBytes: 32,
		Authorize: func(ctx context.Context, c *Conn, a Action, ch string) error {
			asked = append(asked, ch)
			return onlyOwnChannels(ctx, c, a, ch)
		}})
	c := dial(t, url+"?user=alice")
	long := strings.Repeat("x", 33)
	c.SendText(`{"type":"subscribe","id":"b1","channels":["public:a","user:bob","public:a","quota:exceeded",` +
		`"","with space","\ud800","` + long + `","user:alice","public:b","public:c"]}`)
	want := []wstest.Msg{
		{Type: "subscribed", Channel: "public:a", ID: "b1"},
		{Type: "error", Code: CodeForbidden, Channel: "user:bob", ID: "b1"},
		{Type: "subscribed", Channel: "public:a", ID: "b1"},
		{Type: "error", Code: "quota_exceeded", Channel: "quota:exceeded", ID: "b1"},
		{Type: "error", Code: CodeInvalidChannel, ID: "b1"},                        // "" has no channel to echo
		{Type: "error", Code: CodeInvalidChannel, Channel: "with space", ID: "b1"}, // echoed, escaped
		{Type: "error", Code: CodeInvalidChannel, Channel: "\ufffd", ID: "b1"},
		{Type: "error", Code: CodeInvalidChannel, ID: "b1"}, // over MaxChannelBytes: not echoed
		{Type: "subscribed", Channel: "user:alice", ID: "b1"},
		{Type: "subscribed", Channel: "public:b", ID: "b1"},
		{Type: "error", Code: CodeTooManySubscriptions, Channel: "public:c", ID: "b1"},
	}
	for i, w := range want {
		got := c.Next()
		if got.Type == "error" {
			assert.NotEmpty(t, got.Message, "reply %d explains itself", i)
		}
		got.Message = ""
		assert.Equal(t, w, got, "reply %d", i)
	}
	c.NothingPending("p")
	assert.Equal(t, []string{"public:a", "user:bob", "public:a", "quota:exceeded", "user:alice", "public:b", "public:c"},
		asked, "Authorize is asked for every valid name, in order")
	assert.Equal(t, 3, h.Stats().Subscriptions)

	c.SendText(`{"type":"unsubscribe","id":"b2","channels":["public:a","nowhere","public:a","a b"]}`)
	for i, w := range []wstest.Msg{
		{Type: "unsubscribed", Channel: "public:a", ID: "b2"},
		{Type: "unsubscribed", Channel: "nowhere", ID: "b2"},
		{Type: "unsubscribed", Channel: "public:a", ID: "b2"},
		{Type: "error", Code: CodeInvalidChannel, Channel: "a b", ID: "b2"},
	} {
		got := c.Next()
		got.Message = ""
		assert.Equal(t, w, got, "reply %d", i)
	}
	c.NothingPending("p2")
	assert.ElementsMatch(t, []string{"user:alice", "public:b"}, h.reg.conn(onlyConnID(t, h)).Subscriptions())
}

// onlyConnID returns the ID of the hub's one connection.
func onlyConnID(t *testing.T, h *Hub) string {
	t.Helper()
	conns := h.reg.allConns()
	require.Len(t, conns, 1)
	return conns[0].ID()
}

// TestBatchBadShapesAreInvalid: every malformed "channels" gets one invalid_message
// reply with the request's id, and subscribes nothing.
func TestBatchBadShapesAreInvalid(t *testing.T) {
	h, url := startHub(t, &Options{MaxSubscribeChannels: 3, MaxInvalidMessages: -1})
	require.NoError(t, h.Handle("chat", func(context.Context, *Conn, ClientMessage) error { return nil }))
	c := dial(t, url)
	for i, frame := range []string{
		`{"type":"subscribe","channels":"a"`,
		`{"type":"subscribe","channels":null`,
		`{"type":"subscribe","channels":{"a":"b"}`,
		`{"type":"subscribe","channels":["a",1]`,
		`{"type":"subscribe","channels":["a",["b"]]`,
		`{"type":"subscribe","channels":[]`,
		`{"type":"unsubscribe","channels":[]`,
		`{"type":"subscribe","channels":["a","b","c","d"]`,
		`{"type":"unsubscribe","channels":["a","b","c","d"]`,
		`{"type":"subscribe","channel":"a","channels":["a"]`,
		`{"type":"unsubscribe","channels":["a"],"channel":"a"`,
		`{"type":"ping","channels":["a"]`,
		`{"type":"publish","channels":["a"]`,
		`{"type":"chat","channels":["a"]`,
	} {
		id := strconv.Itoa(i)
		c.SendText(frame + `,"id":"` + id + `"}`)
		e := c.ExpectError(CodeInvalidMessage, id)
		assert.Empty(t, e.Channel, frame)
	}
	c.NothingPending("p")
	assert.Zero(t, h.Stats().Subscriptions)
}

// TestBatchCountsOnceAgainstLimits: a batch is one message against MessageRate, and one
// towards MaxInvalidMessages however many of its names are invalid.
func TestBatchCountsOnceAgainstLimits(t *testing.T) {
	h, url := startHub(t, &Options{MessageRate: 0.001, MessageBurst: 2, MaxInvalidMessages: 2})
	c := dial(t, url)
	names := make([]string, 100)
	for i := range names {
		names[i] = "c:" + strconv.Itoa(i)
	}
	b, err := json.Marshal(map[string]any{"type": "subscribe", "id": "1", "channels": names})
	require.NoError(t, err)
	c.SendText(string(b))
	for _, n := range names {
		assert.Equal(t, wstest.Msg{Type: "subscribed", Channel: n, ID: "1"}, c.Next())
	}
	c.SendText(`{"type":"subscribe","id":"2","channels":["","a b","c d"]}`) // one invalid message, not three
	for range 3 {
		c.ExpectError(CodeInvalidChannel, "2")
	}
	c.SendText(`{"type":"ping","id":"3"}`)
	c.ExpectError(CodeRateLimited, "3") // the burst of 2 is spent: the two batches took one each
	assert.Equal(t, 100, h.Stats().Subscriptions)
	assert.Zero(t, h.Stats().PolicyCloses, "two batches with invalid names would be two invalid messages")
}

// TestManySubscriptionsAndPacedSendsOnDefaults is the goal of batch subscribe and the
// welcome: on a hub with default options, a page with 256 subscriptions (one batch) and
// 50 queued sends, paced by the welcome's rate and burst, gets everything acknowledged and
// no rate_limited reply.
func TestManySubscriptionsAndPacedSendsOnDefaults(t *testing.T) {
	h, url := startHub(t, nil)
	require.NoError(t, h.Handle("hello", func(ctx context.Context, c *Conn, m ClientMessage) error {
		return c.Reply(ctx, m, Message{Type: "hello_ack"})
	}))
	c := wstest.Dial(t, url, &wstest.DialOptions{Timeout: testTimeout, ReadLimit: -1, Background: true})
	w := wstest.Data[welcomeData](t, c.Welcome())
	require.NotNil(t, w.Limits.MessageRate)
	require.NotNil(t, w.Limits.MaxChannels)
	// Paced as wspub.js paces itself: 90 % of the rate, 80 % of the burst. At 100 % the
	// 51st message would race the server's refill, which started at the handshake.
	pace := rate.NewLimiter(rate.Limit(*w.Limits.MessageRate*0.9), *w.Limits.MessageBurst*8/10)
	names := make([]string, 256)
	for i := range names {
		names[i] = "quote:" + strconv.Itoa(i)
	}
	require.LessOrEqual(t, len(names), *w.Limits.MaxChannels)
	require.NoError(t, pace.Wait(c.Context()))
	c.Send(map[string]any{"type": "subscribe", "id": "s", "channels": names})
	for i := range 50 {
		require.NoError(t, pace.Wait(c.Context()))
		c.Send(map[string]string{"type": "hello", "id": strconv.Itoa(i)})
	}
	subscribed, acked := 0, 0
	for subscribed < 256 || acked < 50 {
		m := c.Next()
		switch m.Type {
		case "subscribed":
			assert.Equal(t, names[subscribed], m.Channel)
			subscribed++
		case "hello_ack":
			assert.Equal(t, strconv.Itoa(acked), m.ID)
			acked++
		default:
			require.Failf(t, "unexpected message", "%+v", m)
		}
	}
	assert.Zero(t, h.Stats().RateLimited)
	assert.Equal(t, 256, h.Stats().Subscriptions)
}
