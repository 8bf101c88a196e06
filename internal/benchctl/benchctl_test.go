package benchctl

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestParseRequest: the defaults, every parameter, and each parameter out of its range.
func TestParseRequest(t *testing.T) {
	p, err := ParseRequest(url.Values{}.Get)
	require.NoError(t, err)
	assert.Equal(t, Request{Channel: "bench", N: 1000, Size: 128}, p)
	p, err = ParseRequest(url.Values{"channel": {"c"}, "n": {"5"}, "size": {"64"}, "rate": {"20.5"}, "start": {"3"}}.Get)
	require.NoError(t, err)
	assert.Equal(t, Request{Channel: "c", N: 5, Size: 64, Rate: 20.5, Start: 3}, p)
	p, err = ParseRequest(url.Values{"n": {"10000000"}, "size": {"1048576"}, "size0": {"x"}}.Get)
	require.NoError(t, err, "the limits themselves are allowed")
	assert.Equal(t, Request{Channel: "bench", N: MaxN, Size: MaxSize}, p)
	for _, tt := range []struct {
		q    url.Values
		want string
	}{
		{url.Values{"n": {"0"}}, "n must be an integer in 1..10000000"},
		{url.Values{"n": {"10000001"}}, "n must be"},
		{url.Values{"n": {"many"}}, "n must be"},
		{url.Values{"size": {"-1"}}, "size must be an integer in 0..1048576"},
		{url.Values{"size": {"1048577"}}, "size must be"},
		{url.Values{"rate": {"x"}}, "rate must be a number of messages per second"},
		{url.Values{"rate": {"-5"}}, "rate must be"},
		{url.Values{"rate": {"2e9"}}, "rate must be"},
		{url.Values{"start": {"-2"}}, "start must be a non-negative integer"},
	} {
		_, err := ParseRequest(tt.q.Get)
		assert.ErrorContains(t, err, tt.want, tt.q)
	}
}

// TestMessageIsSizeBytes: what a client receives is size bytes, whatever the layout,
// and the data is the numbered, timestamped JSON object.
func TestMessageIsSizeBytes(t *testing.T) {
	envelope := Layout{Prefix: `{"type":"bench","channel":"bench","data":`, Suffix: `}`}
	for _, l := range []Layout{envelope, {Extra: 40}, {}} {
		m := newMessage(l, 128)
		msg := m.append(m.newBuf(), 7, 1_700_000_000_000_000_000)
		assert.Equal(t, 128, m.wireLen(msg), string(msg))
		var v struct {
			Data struct {
				Seq int   `json:"seq"`
				TS  int64 `json:"ts"`
			} `json:"data"`
			Seq int   `json:"seq"`
			TS  int64 `json:"ts"`
		}
		require.NoError(t, json.Unmarshal(msg, &v), string(msg))
		if l.Prefix != "" {
			v.Seq, v.TS = v.Data.Seq, v.Data.TS
		}
		assert.Equal(t, 7, v.Seq)
		assert.EqualValues(t, 1_700_000_000_000_000_000, v.TS)
	}
	small := newMessage(envelope, 0)
	assert.JSONEq(t, `{"type":"bench","channel":"bench","data":{"seq":1,"ts":2,"pad":""}}`,
		string(small.append(nil, 1, 2)), "no pad when size is too small")
	assert.Equal(t, `xy{"seq":1,"ts":2,"pad":"xxxx"}`, string(newMessage(Layout{}, 29).append([]byte("xy"), 1, 2)),
		"append pads what it appends, not what was there")
}

// recorder is a Publish that keeps what it is given.
type recorder struct {
	msgs [][]byte
	err  error // returned from the third call on
}

func (r *recorder) publish(_ context.Context, channel string, msg []byte) error {
	if channel != "c" {
		return errors.New("wrong channel " + channel)
	}
	if r.err != nil && len(r.msgs) == 2 {
		return r.err
	}
	r.msgs = append(r.msgs, msg)
	return nil
}

func seqs(t *testing.T, msgs [][]byte) []int {
	var out []int
	for _, m := range msgs {
		var v struct{ Seq int }
		require.NoError(t, json.Unmarshal(m, &v), string(m))
		out = append(out, v.Seq)
	}
	return out
}

// TestBurst: n messages numbered from start, each a new one unless Reuse, paced when
// there is a rate, and the first failure stops the burst.
func TestBurst(t *testing.T) {
	layout := func(string) Layout { return Layout{Extra: 10} }
	t.Run("new messages", func(t *testing.T) {
		var rec recorder
		p := &Publisher{Layout: layout, Publish: rec.publish}
		before := time.Now().UnixNano()
		res, err := p.Burst(context.Background(), Request{Channel: "c", N: 4, Size: 100, Start: 5})
		require.NoError(t, err)
		assert.Equal(t, 4, res.Published)
		assert.Equal(t, 100, res.EnvelopeBytes)
		assert.GreaterOrEqual(t, res.FirstTS, before)
		assert.Positive(t, res.DurationNS)
		assert.Equal(t, []int{5, 6, 7, 8}, seqs(t, rec.msgs), "each message is Publish's to keep")
		for _, m := range rec.msgs {
			assert.Len(t, m, 90)
		}
	})
	t.Run("reuse", func(t *testing.T) {
		var rec recorder
		var got []int
		p := &Publisher{Layout: layout, Reuse: true, Publish: func(ctx context.Context, channel string, msg []byte) error {
			got = append(got, seqs(t, [][]byte{msg})...)
			return rec.publish(ctx, channel, msg)
		}}
		_, err := p.Burst(context.Background(), Request{Channel: "c", N: 3, Size: 100})
		require.NoError(t, err)
		assert.Equal(t, []int{0, 1, 2}, got)
		assert.Same(t, &rec.msgs[0][0], &rec.msgs[2][0], "one buffer")
	})
	t.Run("rate", func(t *testing.T) {
		var rec recorder
		p := &Publisher{Layout: layout, Publish: rec.publish}
		res, err := p.Burst(context.Background(), Request{Channel: "c", N: 5, Size: 10, Rate: 100})
		require.NoError(t, err)
		assert.Equal(t, 5, res.Published)
		assert.GreaterOrEqual(t, time.Duration(res.DurationNS), 40*time.Millisecond, "message 4 is due at 40 ms")
	})
	t.Run("failure", func(t *testing.T) {
		rec := recorder{err: errors.New("full")}
		p := &Publisher{Layout: layout, Publish: rec.publish}
		res, err := p.Burst(context.Background(), Request{Channel: "c", N: 5, Size: 10})
		assert.EqualError(t, err, "publish 3 of 5: full")
		assert.ErrorIs(t, err, rec.err)
		assert.Equal(t, 2, res.Published)
	})
}

func post(t *testing.T, h http.Handler, target string) (*httptest.ResponseRecorder, Response) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, target, nil))
	var res Response
	if w.Code != http.StatusBadRequest || w.Header().Get("Content-Type") == "application/json" {
		assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &res), w.Body.String())
	}
	return w, res
}

// TestPublisherServeHTTP: 400 for a bad query, 202 and the Response for a burst, 500 or
// Status's code when a Publish fails.
func TestPublisherServeHTTP(t *testing.T) {
	var rec recorder
	p := &Publisher{Layout: func(string) Layout { return Layout{} }, Publish: rec.publish}
	w, _ := post(t, p, "/publish?n=0")
	assert.Equal(t, http.StatusBadRequest, w.Code)
	assert.Contains(t, w.Body.String(), "n must be")
	assert.Empty(t, rec.msgs)

	w, res := post(t, p, "/publish?channel=c&n=2&size=50&start=9")
	assert.Equal(t, http.StatusAccepted, w.Code)
	assert.Equal(t, 2, res.Published)
	assert.Equal(t, 50, res.EnvelopeBytes)
	assert.Empty(t, res.Error)
	assert.Equal(t, []int{9, 10}, seqs(t, rec.msgs))
	assert.NotContains(t, w.Body.String(), `"error"`, "omitted when empty")

	w, res = post(t, p, "/publish?channel=other&n=2")
	assert.Equal(t, http.StatusInternalServerError, w.Code)
	assert.Equal(t, "publish 1 of 2: wrong channel other", res.Error)

	p.Status = func(err error) int { return http.StatusTeapot }
	w, _ = post(t, p, "/publish?channel=other")
	assert.Equal(t, http.StatusTeapot, w.Code)
}

// TestStatsHandler: the hub's figures under "hub", the runtime's, and two collections
// with ?gc=1.
func TestStatsHandler(t *testing.T) {
	h := StatsHandler(func() map[string]int { return map[string]int{"Connections": 3} })
	get := func(target string) (Stats[map[string]int], map[string]any) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
		require.Equal(t, http.StatusOK, w.Code)
		assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
		var st Stats[map[string]int]
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &st))
		var raw map[string]any
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &raw))
		return st, raw
	}
	st, raw := get("/stats")
	assert.False(t, st.GC)
	assert.Equal(t, 3, st.Hub["Connections"])
	assert.Positive(t, st.HeapInuse)
	assert.Positive(t, st.StackInuse)
	assert.Positive(t, st.HeapAlloc)
	assert.Positive(t, st.Sys)
	assert.Positive(t, st.Goroutines)
	for _, k := range []string{"hub", "heap_inuse", "stack_inuse", "heap_alloc", "sys", "num_gc", "goroutines", "gc"} {
		assert.Contains(t, raw, k)
	}
	after, _ := get("/stats?gc=1")
	assert.True(t, after.GC)
	assert.GreaterOrEqual(t, after.NumGC, st.NumGC+2, "two collections")
	for _, no := range []string{"0", "false"} {
		st, _ := get("/stats?gc=" + no)
		assert.False(t, st.GC, no)
	}
}

// TestNewMux: the three routes and their methods.
func TestNewMux(t *testing.T) {
	ws := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusSwitchingProtocols) })
	var rec recorder
	mux := NewMux(ws, &Publisher{Layout: func(string) Layout { return Layout{} }, Publish: rec.publish},
		StatsHandler(func() int { return 0 }))
	for _, tt := range []struct {
		method, target string
		want           int
	}{
		{http.MethodGet, "/ws", http.StatusSwitchingProtocols},
		{http.MethodPost, "/publish?channel=c&n=1", http.StatusAccepted},
		{http.MethodGet, "/publish", http.StatusMethodNotAllowed},
		{http.MethodGet, "/stats", http.StatusOK},
		{http.MethodPost, "/stats", http.StatusMethodNotAllowed},
	} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest(tt.method, tt.target, nil))
		assert.Equal(t, tt.want, w.Code, tt.method+" "+tt.target)
	}
}
