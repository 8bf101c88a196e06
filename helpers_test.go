package wspub

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wspub/wspub/internal/wstest"
)

// testTimeout bounds every test's dialing and reading.
const testTimeout = 30 * time.Second

// startHub serves a new hub on an httptest server. Cleanup closes the hub, then the server.
func startHub(t testing.TB, opts *Options) (*Hub, string) {
	t.Helper()
	h := New(opts)
	return h, wstest.ServeHub(t, h)
}

// dial connects a WebSocket client to a test hub, without a read limit.
func dial(t testing.TB, url string) *wstest.Conn {
	t.Helper()
	return dialHeader(t, url, nil)
}

// dialHeader is dial with a header for the handshake request.
func dialHeader(t testing.TB, url string, header http.Header) *wstest.Conn {
	t.Helper()
	return wstest.Dial(t, url, &wstest.DialOptions{Timeout: testTimeout, Header: header, ReadLimit: -1})
}

// eventually waits for cond, polling briefly.
func eventually(t testing.TB, cond func() bool, msgAndArgs ...any) {
	t.Helper()
	require.Eventually(t, cond, 10*time.Second, 5*time.Millisecond, msgAndArgs...)
}

// startServer serves handler on an httptest server and returns its http:// URL.
func startServer(t testing.TB, handler http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return srv.URL
}
