package redisbroker_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"github.com/wspub/wspub"
	"github.com/wspub/wspub/internal/wstest"
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
		wstest.Unavailable(t, "no Redis at %s (%v): start one (redis-server), or set WSPUB_REDIS_ADDR to the address of one", addr, err)
	}
	return addr
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
	return h, wstest.ServeHub(t, h)
}

// userFromQuery authenticates a connection as the user named by ?user=.
func userFromQuery(r *http.Request) (wspub.Identity, error) {
	u := r.URL.Query().Get("user")
	if u == "" {
		return wspub.Identity{}, errors.New("no user")
	}
	return wspub.Identity{UserID: u}, nil
}

// dial connects a WebSocket client to a hub, without a read limit. A goroutine reads its
// frames, so that a test can wait for a message with a timeout (TryNext); Next waits 10s
// at the most.
func dial(t testing.TB, url string) *wstest.Conn {
	t.Helper()
	return wstest.Dial(t, url, &wstest.DialOptions{
		Timeout: testTimeout, ReadLimit: -1, Background: true, MessageTimeout: 10 * time.Second,
	})
}

// eventually waits for cond, polling briefly.
func eventually(t testing.TB, cond func() bool, msgAndArgs ...any) {
	t.Helper()
	require.Eventually(t, cond, 15*time.Second, 10*time.Millisecond, msgAndArgs...)
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
		wstest.Unavailable(t, "redis-server is not on PATH: install Redis to run the fault tests")
	}
	s := &redisServer{t: t, path: path, dir: t.TempDir(), port: wstest.FreePort(t)}
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

// pause stops the server with SIGSTOP: it keeps its port and its connections, and the
// kernel still accepts new ones, but nothing answers, as with a server stuck in a long
// command or a host under swap. Cleanup resumes it (before killing it).
func (s *redisServer) pause() {
	s.t.Helper()
	require.NotNil(s.t, s.cmd, "redis-server not running")
	require.NoError(s.t, syscall.Kill(s.cmd.Process.Pid, syscall.SIGSTOP))
	s.t.Cleanup(s.resume)
}

// resume continues a paused server with SIGCONT; it does nothing to a running one.
func (s *redisServer) resume() {
	if s.cmd != nil {
		_ = syscall.Kill(s.cmd.Process.Pid, syscall.SIGCONT)
	}
}

// kill stops the server with SIGKILL, as a crash would, and reaps it.
func (s *redisServer) kill() {
	if s.cmd == nil {
		return
	}
	s.resume() // a stopped process dies of SIGKILL too, but leave nothing stopped
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
