package natsbroker

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"github.com/wspub/wspub"
	"github.com/wspub/wspub/internal/wstest"
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
		wstest.Unavailable(t, "NATS is unreachable at %s (%v): start one with `nats-server -a 127.0.0.1 -p 4222` "+
			"(Debian package nats-server), or point WSPUB_NATS_URL at one", url, err)
	}
	nc.Close()
	return url
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
	return &node{hub: h, broker: b, nc: nc, url: wstest.ServeHub(t, h)}
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

// dial connects a WebSocket client to a node, without a read limit.
func dial(t testing.TB, url string) *wstest.Conn {
	t.Helper()
	return wstest.Dial(t, url, &wstest.DialOptions{Timeout: testTimeout, ReadLimit: -1})
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
			wstest.Unavailable(t, "nats-server is not installed (apt-get install nats-server): the fault tests run their own")
		}
	}
	s := &natsServer{t: t, bin: bin, port: wstest.FreePort(t)}
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

// pause stops the server with SIGSTOP: it keeps its port and its connections, and the
// kernel still accepts new ones and takes data until the socket buffers are full, but
// nothing is answered. Cleanup resumes it (before killing it).
func (s *natsServer) pause() {
	s.t.Helper()
	require.NotNil(s.t, s.cmd, "nats-server not running")
	require.NoError(s.t, syscall.Kill(s.cmd.Process.Pid, syscall.SIGSTOP))
	s.t.Cleanup(s.resume)
}

// resume continues a paused server with SIGCONT; it does nothing to a running one.
func (s *natsServer) resume() {
	if s.cmd != nil {
		_ = syscall.Kill(s.cmd.Process.Pid, syscall.SIGCONT)
	}
}

// kill stops the server with SIGKILL, as a crash would, and reaps it.
func (s *natsServer) kill() {
	if s.cmd == nil {
		return
	}
	s.resume() // a stopped process dies of SIGKILL too, but leave nothing stopped
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}
