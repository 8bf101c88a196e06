package natsbroker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"github.com/wspub/wspub"
)

// testTimeout bounds every test's dialing and reading.
const testTimeout = 30 * time.Second

// natsURL returns the NATS server of the tests: WSPUB_NATS_URL, or a local one. If it
// cannot be reached the test is skipped, or fails under CI=true, where a missing server
// is a broken setup rather than a developer's machine without NATS.
func natsURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("WSPUB_NATS_URL")
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second), nats.NoReconnect())
	if err != nil {
		unavailable(t, "NATS is unreachable at %s (%v): start one with `nats-server -a 127.0.0.1 -p 4222` "+
			"(Debian package nats-server), or point WSPUB_NATS_URL at one", url, err)
	}
	nc.Close()
	return url
}

func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// testPrefix returns a subject prefix no other test or run shares.
func testPrefix(t testing.TB) string {
	t.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "wspubtest." + hex.EncodeToString(b[:])
}

// connect opens a NATS connection that reconnects for ever, closed at cleanup.
func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second),
		nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

// node is one wspub hub with its own NATS connection and Broker, on its own server.
type node struct {
	hub    *wspub.Hub
	broker *Broker
	nc     *nats.Conn
	url    string // ws://
}

// startNode starts a node. Cleanup closes the hub (and so the Broker), the server, then
// the NATS connection.
func startNode(t testing.TB, url, prefix string, hubOpts wspub.Options, brokerOpts Options) *node {
	t.Helper()
	nc := connect(t, url)
	brokerOpts.Prefix = prefix
	b, err := New(nc, &brokerOpts)
	require.NoError(t, err)
	hubOpts.Broker = b
	h := wspub.New(&hubOpts)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		_ = h.Close()
		srv.Close()
	})
	return &node{hub: h, broker: b, nc: nc, url: "ws" + strings.TrimPrefix(srv.URL, "http")}
}

// startNodes starts n nodes sharing a fresh prefix on the NATS server at url.
func startNodes(t testing.TB, url string, n int, hubOpts wspub.Options) []*node {
	t.Helper()
	prefix := testPrefix(t)
	nodes := make([]*node, n)
	for i := range nodes {
		nodes[i] = startNode(t, url, prefix, hubOpts, Options{})
	}
	return nodes
}

// subscriptions returns how many channels the Broker is subscribed to.
func (b *Broker) subscriptions() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// subscribed reports whether the Broker is subscribed to channel.
func (b *Broker) subscribed(channel string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.subs[channel]
	return ok
}

// userFromQuery authenticates the user named by ?user=.
func userFromQuery(r *http.Request) (wspub.Identity, error) {
	u := r.URL.Query().Get("user")
	if u == "" {
		return wspub.Identity{}, errors.New("no user")
	}
	return wspub.Identity{UserID: u}, nil
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

// client is a real WebSocket client of a node. It splits batched frames on '\n'.
type client struct {
	t       testing.TB
	ws      *websocket.Conn
	ctx     context.Context
	pending [][]byte
}

func dial(t testing.TB, url string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{wspub.Subprotocol}})
	require.NoError(t, err)
	if resp.Body != nil {
		_ = resp.Body.Close()
	}
	ws.SetReadLimit(-1)
	t.Cleanup(func() { _ = ws.CloseNow() })
	return &client{t: t, ws: ws, ctx: ctx}
}

func (c *client) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	require.NoError(c.t, err)
	require.NoError(c.t, c.ws.Write(c.ctx, websocket.MessageText, b))
}

// next returns the next message (one line of a frame).
func (c *client) next() envelope {
	c.t.Helper()
	for len(c.pending) == 0 {
		typ, b, err := c.ws.Read(c.ctx)
		require.NoError(c.t, err)
		require.Equal(c.t, websocket.MessageText, typ)
		c.pending = bytes.Split(b, []byte{'\n'})
	}
	m := c.pending[0]
	c.pending = c.pending[1:]
	var e envelope
	require.NoError(c.t, json.Unmarshal(m, &e), "server sent %q", m)
	return e
}

// expect reads the next message and checks its type.
func (c *client) expect(typ string) envelope {
	c.t.Helper()
	e := c.next()
	require.Equal(c.t, typ, e.Type, "message %+v", e)
	return e
}

// until reads messages until one of type typ.
func (c *client) until(typ string) envelope {
	c.t.Helper()
	for {
		if e := c.next(); e.Type == typ {
			return e
		}
	}
}

// subscribe subscribes and waits for the acknowledgement, which the hub sends once the
// broker has confirmed the subscription.
func (c *client) subscribe(channel string) {
	c.t.Helper()
	c.send(map[string]string{"type": "subscribe", "channel": channel, "id": "s"})
	e := c.expect("subscribed")
	require.Equal(c.t, channel, e.Channel)
}

func (c *client) unsubscribe(channel string) {
	c.t.Helper()
	c.send(map[string]string{"type": "unsubscribe", "channel": channel, "id": "u"})
	e := c.expect("unsubscribed")
	require.Equal(c.t, channel, e.Channel)
}

// nothingMore sends a ping and requires its pong as the very next message: nothing else,
// a duplicate in particular, was queued for the client before it.
func (c *client) nothingMore(id string) {
	c.t.Helper()
	c.send(map[string]string{"type": "ping", "id": id})
	e := c.next()
	require.Equal(c.t, envelope{Type: "pong", ID: id}, e, "expected the pong, got another message")
}

// data decodes a message's data.
func data[T any](t testing.TB, e envelope) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(e.Data, &v), "data %s", e.Data)
	return v
}

// logRecorder is a slog.Handler that keeps every record's message.
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

// events returns the records with the given message, each as a map of its attributes
// plus its level.
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

// messages returns the messages of all records, in order.
func (r *logRecorder) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.records))
	for i, rec := range r.records {
		out[i] = rec.Message
	}
	return out
}

// eventually waits for cond, polling briefly.
func eventually(t testing.TB, cond func() bool, msgAndArgs ...any) {
	t.Helper()
	require.Eventually(t, cond, 10*time.Second, 5*time.Millisecond, msgAndArgs...)
}

// natsServer is a nats-server process of the test's own, on a loopback port.
type natsServer struct {
	t    testing.TB
	bin  string
	port int
	cmd  *exec.Cmd
}

// startNATSServer starts a nats-server process; cleanup kills it. Without the binary the
// test is skipped (fails under CI=true).
func startNATSServer(t testing.TB) *natsServer {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		bin = "/usr/sbin/nats-server"
		if _, err := os.Stat(bin); err != nil {
			unavailable(t, "nats-server is not installed (apt-get install nats-server): the fault tests run their own")
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	s := &natsServer{t: t, bin: bin, port: port}
	t.Cleanup(s.kill)
	s.start()
	return s
}

func (s *natsServer) url() string { return "nats://127.0.0.1:" + strconv.Itoa(s.port) }

// start runs the server and waits until it accepts connections.
func (s *natsServer) start() {
	s.t.Helper()
	require.Nil(s.t, s.cmd, "already running")
	out, err := os.Create(filepath.Join(s.t.TempDir(), "nats-server.log"))
	require.NoError(s.t, err)
	defer out.Close() // the child has its own descriptor
	s.cmd = exec.Command(s.bin, "-a", "127.0.0.1", "-p", strconv.Itoa(s.port))
	s.cmd.Stdout, s.cmd.Stderr = out, out
	require.NoError(s.t, s.cmd.Start())
	eventually(s.t, func() bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(s.port), time.Second)
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	}, "nats-server does not accept connections; see %s", out.Name())
}

// kill stops the server with SIGKILL, as a crash would, and reaps it.
func (s *natsServer) kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}
