package wspub

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// testTimeout bounds every test's dialing and reading.
const testTimeout = 30 * time.Second

// startHub serves a new hub on an httptest server. Cleanup closes the hub, then the server.
func startHub(t testing.TB, opts *Options) (*Hub, string) {
	t.Helper()
	h := New(opts)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		_ = h.Close()
		srv.Close()
	})
	return h, "ws" + strings.TrimPrefix(srv.URL, "http")
}

// envelope is any server message as a client sees it.
type envelope struct {
	Type    string          `json:"type"`
	Channel string          `json:"channel,omitempty"`
	ID      string          `json:"id,omitempty"`
	Code    string          `json:"code,omitempty"`
	Message string          `json:"message,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// client is a real WebSocket client of a test hub. It splits batched frames on '\n'.
type client struct {
	t       testing.TB
	ws      *websocket.Conn
	ctx     context.Context
	pending [][]byte
	frames  int
}

func dial(t testing.TB, url string) *client {
	t.Helper()
	return dialHeader(t, url, nil)
}

func dialHeader(t testing.TB, url string, header http.Header) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		Subprotocols: []string{Subprotocol},
		HTTPHeader:   header,
	})
	require.NoError(t, err)
	if resp.Body != nil {
		_ = resp.Body.Close()
	}
	ws.SetReadLimit(-1)
	t.Cleanup(func() { _ = ws.CloseNow() })
	return &client{t: t, ws: ws, ctx: ctx}
}

func (c *client) send(frame string) {
	c.t.Helper()
	require.NoError(c.t, c.ws.Write(c.ctx, websocket.MessageText, []byte(frame)))
}

// nextRaw returns the next message (one line of a frame), or the read error.
func (c *client) nextRaw() ([]byte, error) {
	for len(c.pending) == 0 {
		typ, b, err := c.ws.Read(c.ctx)
		if err != nil {
			return nil, err
		}
		if typ != websocket.MessageText {
			c.t.Errorf("server sent a %v frame", typ)
		}
		c.frames++
		c.pending = bytes.Split(b, []byte{'\n'})
	}
	m := c.pending[0]
	c.pending = c.pending[1:]
	return m, nil
}

// next returns the next message and fails the test on a read error.
func (c *client) next() envelope {
	c.t.Helper()
	b, err := c.nextRaw()
	require.NoError(c.t, err)
	var e envelope
	require.NoError(c.t, json.Unmarshal(b, &e), "server sent %q", b)
	return e
}

// expect reads the next message and checks its type.
func (c *client) expect(typ string) envelope {
	c.t.Helper()
	e := c.next()
	require.Equal(c.t, typ, e.Type, "message %+v", e)
	return e
}

// subscribe subscribes and waits for the acknowledgement.
func (c *client) subscribe(channel string) {
	c.t.Helper()
	c.send(`{"type":"subscribe","channel":"` + channel + `","id":"s"}`)
	e := c.expect("subscribed")
	require.Equal(c.t, channel, e.Channel)
}

// roundTrip sends a ping and waits for its pong, reading past anything before it.
func (c *client) roundTrip(id string) {
	c.t.Helper()
	c.send(`{"type":"ping","id":"` + id + `"}`)
	for {
		if e := c.next(); e.Type == "pong" && e.ID == id {
			return
		}
	}
}

// closeErr reads until the connection ends and returns the read error.
func (c *client) closeErr() error {
	c.t.Helper()
	for {
		if _, err := c.nextRaw(); err != nil {
			return err
		}
	}
}

// logRecorder is a slog.Handler that keeps every record, for asserting log events.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func newLogger() (*slog.Logger, *logRecorder) {
	r := &logRecorder{}
	return slog.New(r), r
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec.Clone())
	return nil
}

// events returns the records with the given message, each as a map of its attributes.
func (r *logRecorder) events(msg string) []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, rec := range r.records {
		if rec.Message != msg {
			continue
		}
		m := map[string]any{"level": rec.Level}
		rec.Attrs(func(a slog.Attr) bool {
			m[a.Key] = a.Value.Any()
			return true
		})
		out = append(out, m)
	}
	return out
}

// eventually waits for cond, polling briefly.
func eventually(t testing.TB, cond func() bool, msgAndArgs ...any) {
	t.Helper()
	require.Eventually(t, cond, 10*time.Second, 5*time.Millisecond, msgAndArgs...)
}

func decodeEnvelope(t testing.TB, b []byte) envelope {
	t.Helper()
	var e envelope
	require.NoError(t, json.Unmarshal(b, &e), "server sent %q", b)
	return e
}

// startServer serves handler on an httptest server and returns its http:// URL.
func startServer(t testing.TB, handler http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return srv.URL
}
