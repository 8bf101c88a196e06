package bench

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/wspub/wspub/internal/benchctl"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestEnvelopeLayout: through the control surface, a wspub-protocol peer is given
// wspub's envelope of the bench data, size bytes in all, whatever the channel's name.
func TestEnvelopeLayout(t *testing.T) {
	for _, channel := range []string{"bench", `odd "name" <&>`} {
		var msgs [][]byte
		p := &benchctl.Publisher{Layout: EnvelopeLayout, Publish: func(_ context.Context, _ string, msg []byte) error {
			msgs = append(msgs, msg)
			return nil
		}}
		res, err := p.Burst(context.Background(), benchctl.Request{Channel: channel, N: 2, Size: 128, Start: 7})
		require.NoError(t, err)
		assert.Equal(t, 128, res.EnvelopeBytes)
		require.Len(t, msgs, 2)
		for i, msg := range msgs {
			assert.Len(t, msg, 128, string(msg))
			var v struct {
				Type, Channel string
				Data          struct{ Seq int }
			}
			require.NoError(t, json.Unmarshal(msg, &v), string(msg))
			assert.Equal(t, "bench", v.Type)
			assert.Equal(t, channel, v.Channel)
			assert.Equal(t, 7+i, v.Data.Seq)
		}
	}
}

func TestSubscribe(t *testing.T) {
	ch, id, ok := ParseSubscribe([]byte(`{"type":"subscribe","channel":"idle:3","id":"1"}`))
	assert.True(t, ok)
	assert.Equal(t, "idle:3", ch)
	assert.Equal(t, "1", id)
	assert.JSONEq(t, `{"type":"subscribed","channel":"idle:3","id":"1"}`, string(Subscribed(ch, id)))
	for _, bad := range []string{`{"type":"publish","channel":"c"}`, `{"type":"subscribe"}`, `nope`} {
		_, _, ok := ParseSubscribe([]byte(bad))
		assert.False(t, ok, bad)
	}
	assert.JSONEq(t, `{"type":"error","code":"c","message":"m"}`, string(ErrorReply("c", "m")))
}
