package wspub

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wspub/wspub/internal/wstest"
)

// refusalClock is the refusal log's clock in a test: it moves only when told to.
type refusalClock struct{ ns atomic.Int64 }

func (c *refusalClock) now() int64 { return c.ns.Load() }

// pass moves the clock one refusal log interval on.
func (c *refusalClock) pass() { c.ns.Add(int64(refusalLogInterval)) }

// startHubWithClock is startHub with the refusal log on a clock of the test's, and with
// a handler between the server and the hub (nil: the hub itself).
func startHubWithClock(t *testing.T, opts *Options, wrap func(http.Handler) http.Handler) (*Hub, string, *refusalClock) {
	t.Helper()
	h := New(opts)
	clk := &refusalClock{}
	h.refusals.clock = clk.now // before the hub serves anything
	var handler http.Handler = h
	if wrap != nil {
		handler = wrap(h)
	}
	srv := startServer(t, handler)
	t.Cleanup(func() { _ = h.Close() })
	return h, wstest.WSURL(srv), clk
}

// get sends a plain (non-upgrade) GET to a hub's URL with the given headers and returns
// the response and its body.
func get(t *testing.T, wsURL string, header http.Header) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http"+strings.TrimPrefix(wsURL, "ws"), nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

// dialResponse dials with header and subprotocols and returns the handshake's response
// and its body (the connection, if any, is closed at cleanup).
func dialResponse(t *testing.T, url string, header http.Header, protocols ...string) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPHeader: header, Subprotocols: append([]string{Subprotocol}, protocols...),
	})
	if err == nil {
		t.Cleanup(func() { _ = ws.CloseNow() })
		return resp, ""
	}
	require.NotNil(t, resp, "%v", err)
	body, _ := io.ReadAll(resp.Body) // coder/websocket keeps the first bytes of the body
	return resp, string(body)
}

// TestMisconfigurationRefusalsAreWarnings: the refusals that mean the server or the page
// is set up wrong are logged at Warn (501 behind http.TimeoutHandler, 403 for an origin
// OriginPatterns lacks, 401 for a request that carried no credential at all); those
// that are a client's lot (a wrong token, a plain GET, too many connections, shutdown)
// at Info.
func TestMisconfigurationRefusalsAreWarnings(t *testing.T) {
	logger, logs := wstest.NewLogger()
	reject := func(r *http.Request) (Identity, error) {
		if r.URL.Query().Get("user") == "bob" {
			return Identity{UserID: "bob"}, nil
		}
		return Identity{}, io.EOF
	}
	opts := &Options{Logger: logger, Authenticate: reject, MaxConnsPerUser: 1}
	_, url, _ := startHubWithClock(t, opts, nil)
	_, timeoutURL, _ := startHubWithClock(t, opts, func(h http.Handler) http.Handler {
		return http.TimeoutHandler(h, time.Minute, "")
	})

	resp, _ := dialResponse(t, timeoutURL, nil)
	assert.Equal(t, http.StatusNotImplemented, resp.StatusCode)
	resp, _ = dialResponse(t, url, originHeader("https://a.example"))
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, _ = dialResponse(t, url, nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no credentials")
	resp, _ = dialResponse(t, url, nil, SubprotocolTokenPrefix+"wrong")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a token")
	resp, _ = dialResponse(t, url, http.Header{"Authorization": {"Bearer wrong"}})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "an Authorization header: the same cause")
	resp, _ = get(t, url, nil)
	assert.Equal(t, http.StatusUpgradeRequired, resp.StatusCode)
	resp, _ = dialResponse(t, url+"?user=bob", nil)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	resp, _ = dialResponse(t, url+"?user=bob", nil)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)

	levels := map[string]slog.Level{}
	for _, e := range logs.Events("websocket_rejected") {
		cause := e["cause"].(string)
		assert.NotContains(t, levels, cause, "logged twice")
		levels[cause] = e["level"].(slog.Level)
	}
	assert.Equal(t, map[string]slog.Level{
		"not_hijackable":  slog.LevelWarn,
		"origin":          slog.LevelWarn,
		"no_credentials":  slog.LevelWarn,
		"bad_credentials": slog.LevelInfo,
		"not_upgrade":     slog.LevelInfo,
		"user_full":       slog.LevelInfo,
	}, levels)
}

// TestRefusalsAreLoggedOncePerCausePerInterval: a client retrying a refused handshake
// makes one log line per cause (per origin, for 403) per interval; the next line counts
// the refusals that were not logged; Stats counts every one.
func TestRefusalsAreLoggedOncePerCausePerInterval(t *testing.T) {
	logger, logs := wstest.NewLogger()
	h, url, clk := startHubWithClock(t, &Options{Logger: logger}, nil)
	refuse := func(origin string, n int) {
		for range n {
			resp, _ := dialResponse(t, url, originHeader(origin))
			require.Equal(t, http.StatusForbidden, resp.StatusCode)
		}
	}
	plain := func(n int) {
		for range n {
			resp, _ := get(t, url, nil)
			require.Equal(t, http.StatusUpgradeRequired, resp.StatusCode)
		}
	}
	type line struct {
		Origin     string
		Cause      string
		Suppressed uint64
	}
	lines := func() []line {
		var out []line
		for _, e := range logs.Events("websocket_rejected") {
			out = append(out, line{e["origin"].(string), e["cause"].(string), e["suppressed"].(uint64)})
		}
		return out
	}

	refuse("https://a.example", 5)
	refuse("https://b.example", 3)
	plain(4)
	assert.Equal(t, []line{
		{"https://a.example", "origin", 0}, {"https://b.example", "origin", 0}, {"", "not_upgrade", 0},
	}, lines())

	clk.ns.Add(int64(refusalLogInterval) - 1) // not quite the interval
	refuse("https://a.example", 1)
	assert.Len(t, lines(), 3)

	clk.ns.Add(1)
	refuse("https://a.example", 1)
	refuse("https://b.example", 1)
	plain(1)
	assert.Equal(t, []line{
		{"https://a.example", "origin", 5}, {"https://b.example", "origin", 2}, {"", "not_upgrade", 3},
	}, lines()[3:])
	assert.Equal(t, uint64(5+3+4+1+3), h.Stats().Rejected)

	clk.pass()
	refuse("https://a.example", 1)
	assert.Equal(t, line{"https://a.example", "origin", 0}, lines()[6])
}

// TestRefusalLogIsBoundedUnderManyOrigins: a client that sends a new Origin with every
// request (and huge ones) cannot make the refusal log grow, in memory or in lines: beyond
// maxLoggedOrigins the origins share one line per interval, which counts what it stands
// for once their slots are forgotten.
func TestRefusalLogIsBoundedUnderManyOrigins(t *testing.T) {
	logger, logs := wstest.NewLogger()
	h, url, clk := startHubWithClock(t, &Options{Logger: logger}, nil)
	origin := func(i int) string {
		return "https://" + strconv.Itoa(i) + strings.Repeat("x", 4<<10) + ".example"
	}
	const n = 1000
	for i := range n {
		resp, _ := get(t, url, originHeader(origin(i)))
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
	}
	tracked := func() (n, longest int) {
		h.refusals.mu.Lock()
		defer h.refusals.mu.Unlock()
		for o := range h.refusals.origins {
			longest = max(longest, len(o))
		}
		return len(h.refusals.origins), longest
	}
	count, longest := tracked()
	assert.Equal(t, maxLoggedOrigins, count)
	assert.LessOrEqual(t, longest, maxKeptHeader)
	rejected := logs.Events("websocket_rejected")
	require.Len(t, rejected, maxLoggedOrigins+1)
	shared := rejected[maxLoggedOrigins]
	assert.Equal(t, true, shared["other_origins"])
	assert.Equal(t, uint64(0), shared["suppressed"])
	assert.LessOrEqual(t, len(shared["origin"].(string)), maxKeptHeader)
	assert.Equal(t, uint64(n), h.Stats().Rejected)

	// An interval later, the first origin refused again: the tracked ones are forgotten,
	// and the shared line reports the refusals it stood for.
	clk.pass()
	for i := range 2 * maxLoggedOrigins {
		resp, _ := get(t, url, originHeader(origin(n+i)))
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
	}
	count, _ = tracked()
	assert.Equal(t, maxLoggedOrigins, count)
	rejected = logs.Events("websocket_rejected")
	require.Len(t, rejected, 2*(maxLoggedOrigins+1))
	shared = rejected[len(rejected)-1]
	assert.Equal(t, true, shared["other_origins"])
	assert.Equal(t, uint64(n-maxLoggedOrigins-1), shared["suppressed"])
}

// TestForeignOriginRefusalNamesThePatternToAdd: the 403's text, in the body and the log,
// names Options.OriginPatterns and the pattern that allows the page, and that pattern
// does allow it.
func TestForeignOriginRefusalNamesThePatternToAdd(t *testing.T) {
	tests := []struct {
		name, origin, pattern string
		header                http.Header
	}{
		{"host and port", "http://a.example:8080", "a.example:8080", nil},
		{"https, no port, upper case: the scheme too", "https://APP.Example", "https://app.example", nil},
		{"IPv6 literal: bracket escaped", "http://[::1]:9000", `\[::1]:9000`, nil},
		{"the hub's own host over plain http, hub behind TLS", "", "http://", http.Header{"X-Forwarded-Proto": {"https"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, logs := wstest.NewLogger()
			_, url := startHub(t, &Options{Logger: logger})
			origin, pattern := tt.origin, tt.pattern
			if origin == "" { // the hub's own host
				origin = "http://" + strings.TrimPrefix(url, "ws://")
				pattern += strings.TrimPrefix(url, "ws://")
			}
			header := originHeader(origin)
			for k, v := range tt.header {
				header[k] = v
			}
			resp, body := dialResponse(t, url, header)
			require.Equal(t, http.StatusForbidden, resp.StatusCode)
			want := "origin " + strconv.Quote(origin) + " not allowed; "
			assert.True(t, strings.HasPrefix(body, "wspub: "+want), body)
			assert.Contains(t, body, `add "`+pattern+`" to Options.OriginPatterns`, "quoted as written, not in Go's quoting")
			rejected := logs.Events("websocket_rejected")
			require.Len(t, rejected, 1)
			assert.Equal(t, strings.TrimSuffix(strings.TrimPrefix(body, "wspub: "), "\n"), rejected[0]["reason"])

			_, allowing := startHub(t, &Options{OriginPatterns: []string{pattern}})
			status, _ := dialStatus(t, allowing, header)
			assert.Equal(t, http.StatusSwitchingProtocols, status, "the suggested pattern %q", pattern)
		})
	}
	t.Run("an origin without a host", func(t *testing.T) {
		_, url := startHub(t, nil)
		resp, body := dialResponse(t, url, originHeader("null"))
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		assert.Contains(t, body, "cannot be allowed by Options.OriginPatterns")
		assert.Contains(t, body, "Options.InsecureSkipOriginCheck")
	})
}

// TestNonUpgradeRefusalsCarryCORSHeaders: a page of another origin can read why a plain
// GET of the hub's URL is refused (503, 501, 403, 426): the answer allows its origin,
// varies by origin and allows no credentials. Handshake responses, refused or not, and
// requests without an Origin carry no CORS header.
func TestNonUpgradeRefusalsCarryCORSHeaders(t *testing.T) {
	const page = "http://page.example:3000"
	fromPage := originHeader(page)
	_, strict, _ := startHubWithClock(t, nil, nil)
	_, open, _ := startHubWithClock(t, &Options{OriginPatterns: []string{"page.example:3000"},
		Authenticate: func(*http.Request) (Identity, error) { return Identity{}, io.EOF }}, nil)
	_, timeout, _ := startHubWithClock(t, nil, func(h http.Handler) http.Handler {
		return http.TimeoutHandler(h, time.Minute, "")
	})
	closed, closedURL, _ := startHubWithClock(t, nil, nil)
	require.NoError(t, closed.Shutdown(context.Background()))

	for _, tt := range []struct {
		url              string
		status, noOrigin int // without an Origin, the request is not refused for it
	}{
		{strict, http.StatusForbidden, http.StatusUpgradeRequired},
		{open, http.StatusUpgradeRequired, http.StatusUpgradeRequired},
		{timeout, http.StatusNotImplemented, http.StatusNotImplemented},
		{closedURL, http.StatusServiceUnavailable, http.StatusServiceUnavailable},
	} {
		resp, body := get(t, tt.url, fromPage)
		assert.Equal(t, tt.status, resp.StatusCode, body)
		assert.True(t, strings.HasPrefix(body, "wspub: "), body)
		assert.Equal(t, page, resp.Header.Get("Access-Control-Allow-Origin"), "status %d", tt.status)
		assert.Contains(t, resp.Header.Values("Vary"), "Origin", "status %d", tt.status)
		assert.Empty(t, resp.Header.Get("Access-Control-Allow-Credentials"))

		resp, _ = get(t, tt.url, nil)
		assert.Equal(t, tt.noOrigin, resp.StatusCode)
		assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"), "no Origin, status %d", tt.status)
	}

	for _, tt := range []struct {
		url    string
		status int
	}{
		{strict, http.StatusForbidden},
		{open, http.StatusUnauthorized},
		{timeout, http.StatusNotImplemented},
	} {
		resp, _ := dialResponse(t, tt.url, fromPage)
		assert.Equal(t, tt.status, resp.StatusCode)
		assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"), "handshake refused with %d", tt.status)
	}
	_, ok, _ := startHubWithClock(t, &Options{OriginPatterns: []string{"page.example:3000"}}, nil)
	resp, _ := dialResponse(t, ok, fromPage)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"), "a successful handshake")
}

// TestHubBehindTimeoutHandlerIs501: http.TimeoutHandler hides http.Hijacker; the hub
// answers 501 with a text that names the cause, before anything else, and counts it.
func TestHubBehindTimeoutHandlerIs501(t *testing.T) {
	logger, logs := wstest.NewLogger()
	h, url, _ := startHubWithClock(t, &Options{Logger: logger}, func(h http.Handler) http.Handler {
		return http.TimeoutHandler(h, time.Minute, "")
	})
	resp, body := dialResponse(t, url, nil)
	assert.Equal(t, http.StatusNotImplemented, resp.StatusCode)
	assert.Contains(t, body, "http.TimeoutHandler")
	assert.Contains(t, body, "mount the hub outside")
	rejected := logs.Events("websocket_rejected")
	require.Len(t, rejected, 1)
	assert.Equal(t, slog.LevelWarn, rejected[0]["level"])
	assert.Equal(t, "not_hijackable", rejected[0]["cause"])
	st := h.Stats()
	assert.Equal(t, uint64(1), st.Rejected)
	assert.Zero(t, st.Accepted)
}
