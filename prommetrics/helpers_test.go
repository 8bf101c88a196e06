package prommetrics

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"github.com/wspub/wspub"
)

// testTimeout bounds every test's dialing and reading.
const testTimeout = 30 * time.Second

// startHub serves a new hub on an httptest server and returns it with its ws:// URL.
// Cleanup closes the hub, then the server.
func startHub(t *testing.T, opts *wspub.Options) (*wspub.Hub, string) {
	t.Helper()
	hub := wspub.New(opts)
	srv := httptest.NewServer(hub)
	t.Cleanup(func() {
		_ = hub.Close()
		srv.Close()
	})
	return hub, "ws" + strings.TrimPrefix(srv.URL, "http")
}

// client is a real WebSocket client of a test hub.
type client struct {
	t       *testing.T
	ws      *websocket.Conn
	ctx     context.Context
	pending [][]byte // messages of the last frame not read yet
}

func dial(t *testing.T, url string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{wspub.Subprotocol}})
	require.NoError(t, err)
	if resp.Body != nil {
		_ = resp.Body.Close()
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	return &client{t: t, ws: ws, ctx: ctx}
}

// envelope is a server message as a client sees it.
type envelope struct {
	Type    string `json:"type"`
	Channel string `json:"channel"`
	ID      string `json:"id"`
}

// next returns the next message; a frame may hold several, separated by '\n'.
func (c *client) next() envelope {
	c.t.Helper()
	for len(c.pending) == 0 {
		_, b, err := c.ws.Read(c.ctx)
		require.NoError(c.t, err)
		c.pending = bytes.Split(b, []byte{'\n'})
	}
	var e envelope
	require.NoError(c.t, json.Unmarshal(c.pending[0], &e), "server sent %q", c.pending[0])
	c.pending = c.pending[1:]
	return e
}

// subscribe subscribes to channel and waits for the acknowledgement.
func (c *client) subscribe(channel string) {
	c.t.Helper()
	require.NoError(c.t, c.ws.Write(c.ctx, websocket.MessageText,
		[]byte(`{"type":"subscribe","channel":"`+channel+`","id":"1"}`)))
	e := c.next()
	require.Equal(c.t, envelope{Type: "subscribed", Channel: channel, ID: "1"}, e)
}

// eventually waits for cond, polling briefly.
func eventually(t *testing.T, cond func() bool, msgAndArgs ...any) {
	t.Helper()
	require.Eventually(t, cond, 10*time.Second, 5*time.Millisecond, msgAndArgs...)
}

// stat returns a collector of the one Stats metric named name (without the namespace)
// that col exports, for testutil.ToFloat64.
func stat(t *testing.T, col prometheus.Collector, name string) prometheus.Collector {
	t.Helper()
	c := col.(*collector)
	for i, m := range c.metrics {
		if m.name == name {
			return only{c, c.descs[i]}
		}
	}
	t.Fatalf("no Stats metric %q", name)
	return nil
}

// only is the part of a collector's output with one descriptor.
type only struct {
	col  prometheus.Collector
	desc *prometheus.Desc
}

func (o only) Describe(ch chan<- *prometheus.Desc) { ch <- o.desc }

func (o only) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric)
	go func() {
		o.col.Collect(all)
		close(all)
	}()
	for m := range all {
		if m.Desc() == o.desc {
			ch <- m
		}
	}
}

// histogram gathers col on a pedantic registry (which also checks that Collect matches
// Describe) and returns the histogram named name.
func histogram(t *testing.T, col prometheus.Collector, name string) *dto.Histogram {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(col))
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == name {
			require.Len(t, f.GetMetric(), 1)
			return f.GetMetric()[0].GetHistogram()
		}
	}
	t.Fatalf("no histogram %q", name)
	return nil
}
