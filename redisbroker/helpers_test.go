package redisbroker_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"github.com/wspub/wspub"
	"github.com/wspub/wspub/redisbroker"
)

// testTimeout bounds every test's dialing and reading.
const testTimeout = 60 * time.Second

// needRedis returns the address of the Redis the tests share (WSPUB_REDIS_ADDR, default
// 127.0.0.1:6379). When it does not answer, the test is skipped, or fails on CI.
func needRedis(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("WSPUB_REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, DialerRetries: 1, MaxRetries: -1})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		unavailable(t, fmt.Sprintf("no Redis at %s (%v): start one (redis-server), or set WSPUB_REDIS_ADDR to the address of one", addr, err))
	}
	return addr
}

// unavailable skips a test whose service is missing, except on CI (CI=true), where it
// fails: a CI run must not pass by skipping.
func unavailable(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// uniquePrefix returns a Redis channel prefix no other test or test run uses: Redis
// pub/sub ignores database numbers, so parallel runs on one server must not share
// channels.
func uniquePrefix(t testing.TB) string {
	t.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "wspubtest:" + hex.EncodeToString(b[:]) + ":"
}

// newClient returns a Redis client of addr, closed at the end of the test.
func newClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// node is one hub with its own Redis client and Broker, on its own httptest server.
type node struct {
	hub    *wspub.Hub
	broker *redisbroker.Broker
	url    string // ws://
}

// startNode starts a node. Cleanup closes the hub (which closes the broker), then the
// server, then the Redis client.
func startNode(t testing.TB, addr, prefix string, hubOpts wspub.Options, brokerOpts redisbroker.Options) *node {
	t.Helper()
	rdb := newClient(t, addr)
	brokerOpts.Prefix = prefix
	br := redisbroker.New(rdb, &brokerOpts)
	hubOpts.Broker = br
	h, url := startHub(t, &hubOpts)
	return &node{hub: h, broker: br, url: url}
}

func startNodes(t testing.TB, addr, prefix string, n int, hubOpts wspub.Options) []*node {
	t.Helper()
	nodes := make([]*node, n)
	for i := range nodes {
		nodes[i] = startNode(t, addr, prefix, hubOpts, redisbroker.Options{})
	}
	return nodes
}

// startHub serves a new hub on an httptest server; cleanup closes both.
func startHub(t testing.TB, opts *wspub.Options) (*wspub.Hub, string) {
	t.Helper()
	h := wspub.New(opts)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		_ = h.Close()
		srv.Close()
	})
	return h, "ws" + strings.TrimPrefix(srv.URL, "http")
}

// userFromQuery authenticates a connection as the user named by ?user=.
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

// wsClient is a real WebSocket client of a hub. A goroutine reads its frames, splits
// them on '\n' and queues the messages, so that a test can wait for a message with a
// timeout (cancelling a coder/websocket Read closes the connection).
type wsClient struct {
	t    testing.TB
	ws   *websocket.Conn
	ctx  context.Context
	msgs chan envelope
	done chan struct{} // the reading goroutine has exited
}

func dial(t testing.TB, url string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{wspub.Subprotocol}})
	if err != nil {
		cancel()
		require.NoError(t, err)
	}
	if resp.Body != nil {
		_ = resp.Body.Close()
	}
	ws.SetReadLimit(-1)
	c := &wsClient{t: t, ws: ws, ctx: ctx, msgs: make(chan envelope, 1<<14), done: make(chan struct{})}
	go c.read()
	t.Cleanup(func() {
		_ = ws.CloseNow()
		<-c.done
		cancel()
	})
	return c
}

func (c *wsClient) read() {
	defer close(c.done)
	for {
		_, b, err := c.ws.Read(c.ctx)
		if err != nil {
			return
		}
		for _, line := range bytes.Split(b, []byte{'\n'}) {
			var e envelope
			if err := json.Unmarshal(line, &e); err != nil {
				e = envelope{Type: "<undecodable>", Message: string(line)}
			}
			select {
			case c.msgs <- e:
			case <-c.ctx.Done():
				return
			}
		}
	}
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	require.NoError(c.t, err)
	require.NoError(c.t, c.ws.Write(c.ctx, websocket.MessageText, b))
}

// tryNext returns the next message, or false if none comes within d.
func (c *wsClient) tryNext(d time.Duration) (envelope, bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case e := <-c.msgs:
		return e, true
	case <-c.done:
		select {
		case e := <-c.msgs:
			return e, true
		default:
			return envelope{}, false
		}
	case <-t.C:
		return envelope{}, false
	}
}

// next returns the next message, failing the test if none comes within 10s.
func (c *wsClient) next() envelope {
	c.t.Helper()
	e, ok := c.tryNext(10 * time.Second)
	require.True(c.t, ok, "no message within 10s")
	return e
}

// expect reads the next message and checks its type.
func (c *wsClient) expect(typ string) envelope {
	c.t.Helper()
	e := c.next()
	require.Equal(c.t, typ, e.Type, "message %+v", e)
	return e
}

// subscribe subscribes and waits for the acknowledgement.
func (c *wsClient) subscribe(channel string) {
	c.t.Helper()
	c.send(map[string]string{"type": "subscribe", "channel": channel, "id": "s"})
	e := c.expect("subscribed")
	require.Equal(c.t, channel, e.Channel)
}

// unsubscribe unsubscribes and waits for the acknowledgement.
func (c *wsClient) unsubscribe(channel string) {
	c.t.Helper()
	c.send(map[string]string{"type": "unsubscribe", "channel": channel, "id": "u"})
	e := c.expect("unsubscribed")
	require.Equal(c.t, channel, e.Channel)
}

// roundTrip sends a ping and requires its pong as the very next message: nothing else
// (no duplicate of a message read before) is waiting for the client.
func (c *wsClient) roundTrip(id string) {
	c.t.Helper()
	c.send(map[string]string{"type": "ping", "id": id})
	e := c.next()
	require.Equal(c.t, envelope{Type: "pong", ID: id}, e, "expected the pong and nothing before it")
}

// dataString decodes a message's data as a JSON string.
func dataString(t testing.TB, e envelope) string {
	t.Helper()
	var s string
	require.NoError(t, json.Unmarshal(e.Data, &s), "data %s", e.Data)
	return s
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

// events returns the records with the given message, each as a map of its attributes
// and its level.
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
	require.Eventually(t, cond, 15*time.Second, 10*time.Millisecond, msgAndArgs...)
}

// freePort returns a loopback TCP port nothing listens on at the moment.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}

// redisServer is a redis-server process of the test's own, on a loopback port, that
// the test can kill and restart.
type redisServer struct {
	t    testing.TB
	path string
	dir  string
	port int
	addr string
	cmd  *exec.Cmd
}

// startRedisServer starts redis-server without persistence on a free loopback port and
// waits until it answers PING. Cleanup kills it.
func startRedisServer(t testing.TB) *redisServer {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		unavailable(t, "redis-server is not on PATH: install Redis to run the fault tests")
	}
	s := &redisServer{t: t, path: path, dir: t.TempDir(), port: freePort(t)}
	s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	t.Cleanup(s.kill)
	s.start()
	return s
}

// start runs the server on its port and waits until it answers PING.
func (s *redisServer) start() {
	s.t.Helper()
	require.Nil(s.t, s.cmd, "redis-server already running")
	cmd := exec.Command(s.path, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir)
	require.NoError(s.t, cmd.Start())
	s.cmd = cmd
	rdb := redis.NewClient(&redis.Options{Addr: s.addr, DialTimeout: time.Second, DialerRetries: 1, MaxRetries: -1})
	defer rdb.Close()
	require.Eventually(s.t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return rdb.Ping(ctx).Err() == nil
	}, 10*time.Second, 20*time.Millisecond, "redis-server on %s does not answer", s.addr)
}

// kill stops the server with SIGKILL, as a crash would, and reaps it.
func (s *redisServer) kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// proxy forwards TCP connections to a target; frozen, it drops whatever passes in
// either direction while keeping the connections open, as a network partition does
// to a connection whose peers see nothing wrong (half-open).
type proxy struct {
	l      net.Listener
	target string
	frozen atomic.Bool
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// startProxy listens on a loopback port and forwards to target; cleanup stops it.
func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{l: l, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.l.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		down, err := p.l.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = down.Close()
			continue
		}
		if !p.track(down, up) {
			return
		}
		p.wg.Add(2)
		go p.pipe(down, up)
		go p.pipe(up, down)
	}
}

// track records a connection pair, or closes it and reports false once the proxy is closed.
func (p *proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		for _, c := range cs {
			_ = c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

// pipe copies from src to dst, dropping the data while the proxy is frozen; when either
// side ends, it closes both.
func (p *proxy) pipe(src, dst net.Conn) {
	defer p.wg.Done()
	defer func() {
		_ = src.Close()
		_ = dst.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) close() {
	_ = p.l.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}
