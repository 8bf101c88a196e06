package bench

import (
	"encoding/json"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMessageIsSizeBytes(t *testing.T) {
	for _, l := range []Layout{EnvelopeLayout("bench"), EnvelopeLayout(`odd "name"`), {Extra: 40}} {
		m := newMessage(l, 128)
		msg := m.build(7, 1_700_000_000_000_000_000)
		assert.Equal(t, 128, m.wireLen(msg), string(msg))
		var v struct {
			Data struct {
				Seq int   `json:"seq"`
				TS  int64 `json:"ts"`
			} `json:"data"`
			Seq int `json:"seq"`
		}
		require.NoError(t, json.Unmarshal(msg, &v), string(msg))
		if l.Prefix != "" {
			assert.Equal(t, 7, v.Data.Seq)
			assert.EqualValues(t, 1_700_000_000_000_000_000, v.Data.TS)
		} else {
			assert.Equal(t, 7, v.Seq)
		}
	}
	small := newMessage(EnvelopeLayout("bench"), 0).build(1, 2)
	assert.JSONEq(t, `{"type":"bench","channel":"bench","data":{"seq":1,"ts":2,"pad":""}}`, string(small), "no pad when size is too small")
}

func TestParsePublishRequest(t *testing.T) {
	p, err := parsePublishRequest(url.Values{}.Get)
	require.NoError(t, err)
	assert.Equal(t, publishRequest{Channel: "bench", N: 1000, Size: 128}, p)
	p, err = parsePublishRequest(url.Values{"channel": {"c"}, "n": {"5"}, "size": {"64"}, "rate": {"20"}, "start": {"3"}}.Get)
	require.NoError(t, err)
	assert.Equal(t, publishRequest{Channel: "c", N: 5, Size: 64, Rate: 20, Start: 3}, p)
	for _, bad := range []url.Values{{"n": {"0"}}, {"size": {"-1"}}, {"rate": {"x"}}, {"start": {"-2"}}} {
		_, err := parsePublishRequest(bad.Get)
		assert.Error(t, err, bad)
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
