package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wspub/wspub"
	"github.com/wspub/wspub/internal/wstest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// requireService skips when a broker is not reachable on a developer's machine, and
// fails under CI=true, where it must be.
func requireService(t *testing.T, name, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		wstest.Unavailable(t, "%s is not reachable at %s (%v); start it to run this test", name, addr, err)
		return
	}
	_ = c.Close()
}

// startInstance runs one instance on an httptest server.
func startInstance(t *testing.T, cfg config) (*server, *httptest.Server) {
	t.Helper()
	b, closeBroker, err := newBroker(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	hub := wspub.New(&wspub.Options{Broker: b})
	app := newServer(hub, cfg)
	srv := httptest.NewServer(app)
	t.Cleanup(func() {
		srv.Close()
		app.shutdown()
		_ = hub.Close()
		closeBroker()
	})
	return app, srv
}

// TestJobAcrossInstances: a page connected to instance A starts a job on instance B and
// watches every progress update arrive, through the broker, in order.
func TestJobAcrossInstances(t *testing.T) {
	for _, broker := range []string{"redis", "nats"} {
		t.Run(broker, func(t *testing.T) {
			cfg := config{broker: broker, redisAddr: envOr("WSPUB_REDIS_ADDR", "127.0.0.1:6379"),
				natsURL: envOr("WSPUB_NATS_URL", "nats://127.0.0.1:4222"), tick: 5 * time.Millisecond,
				prefix: fmt.Sprintf("wspubtest-multinode-%d", time.Now().UnixNano())}
			if broker == "redis" {
				requireService(t, "Redis", cfg.redisAddr)
			} else {
				requireService(t, "NATS", strings.TrimPrefix(cfg.natsURL, "nats://"))
			}
			cfgA, cfgB := cfg, cfg
			cfgA.name, cfgB.name = "A", "B"
			appA, srvA := startInstance(t, cfgA)
			appB, srvB := startInstance(t, cfgB)
			appA.cfg.peer, appB.cfg.peer = srvB.URL, srvA.URL

			page, err := http.Get(srvA.URL + "/")
			require.NoError(t, err)
			body, _ := io.ReadAll(page.Body)
			_ = page.Body.Close()
			assert.Contains(t, string(body), "<b id=\"node\">A</b>")

			ws := wstest.Dial(t, wstest.WSURL(srvA.URL)+"/ws", &wstest.DialOptions{Timeout: 30 * time.Second})
			var created map[string]string
			postJSON(t, srvA.URL+"/jobs?on=peer", http.StatusAccepted, &created)
			assert.Equal(t, "B", created["node"], "created on the peer")

			ws.Subscribe(created["channel"], "s")
			postJSON(t, srvA.URL+"/jobs/"+created["id"]+"/start?on=peer", http.StatusAccepted, nil)

			last := -1
			for {
				m := ws.Next()
				require.Equal(t, "progress", m.Type, "%+v", m)
				data := wstest.Data[map[string]any](t, m)
				assert.Equal(t, "B", data["node"], "published on B")
				percent := int(data["percent"].(float64))
				require.GreaterOrEqual(t, percent, last, "in order")
				last = percent
				if data["status"] == "done" {
					break
				}
			}
			assert.Equal(t, 100, last)
			postJSON(t, srvA.URL+"/jobs/nope/start", http.StatusNotFound, nil)
		})
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func postJSON(t *testing.T, url string, status int, out any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, status, resp.StatusCode)
	if out != nil {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
	}
}
