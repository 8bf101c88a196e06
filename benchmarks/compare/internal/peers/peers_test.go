package peers

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/wspub/wspub/benchmarks/compare/internal/bench"
	"github.com/wspub/wspub/internal/benchctl"
	"github.com/wspub/wspub/internal/wstest"
)

// TestMain fails the run if a test leaves a goroutine behind: every peer's Close must
// end its connections and goroutines. But for one of centrifuge's: a second after a
// channel's last subscriber leaves, a worker of the Node unsubscribes it from the broker,
// and Node.Shutdown does not wait for it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/centrifugal/centrifuge.(*Node).unsubscribeFromBrokerWhenEmpty.func1"))
}

// subscribeFrame and isAck are the two protocols' subscribe request and reply, as the
// load tool speaks them.
func subscribeFrame(proto, channel string) string {
	if proto == "centrifuge" {
		return `{"id":1,"connect":{}}` + "\n" + `{"id":2,"subscribe":{"channel":"` + channel + `"}}`
	}
	return `{"type":"subscribe","channel":"` + channel + `","id":"1"}`
}

func isAck(proto, line string) bool {
	if proto == "centrifuge" {
		return strings.HasPrefix(line, `{"id":2,"subscribe":`)
	}
	return strings.Contains(line, `"type":"subscribed"`)
}

// TestPeersDeliverABurst subscribes a real client to every peer, publishes a burst
// through POST /publish and checks that every message arrives, in order, of the size
// asked; and that /stats counts the connection.
func TestPeersDeliverABurst(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			peer, err := New(name)
			require.NoError(t, err)
			srv := httptest.NewServer(bench.NewHandler(peer))
			defer srv.Close()
			defer func() { assert.NoError(t, peer.Close()) }()

			proto := Protocol(name)
			ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil)
			require.NoError(t, err)
			defer ws.CloseNow()
			require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte(subscribeFrame(proto, "bench"))))
			lines := make(chan string, 64)
			go func() {
				defer close(lines)
				for {
					_, b, err := ws.Read(context.Background())
					if err != nil {
						return
					}
					for _, l := range bytes.Split(b, []byte("\n")) {
						lines <- string(l)
					}
				}
			}()
			next := func() string {
				select {
				case l, ok := <-lines:
					require.True(t, ok, "the connection ended")
					return l
				case <-ctx.Done():
					require.FailNow(t, "timed out")
				}
				return ""
			}
			for l := next(); !isAck(proto, l); l = next() {
			}

			var st bench.Stats
			wstest.GetJSON(t, srv.URL+"/stats?gc=1", &st)
			assert.Equal(t, 1, st.Hub.Connections)
			assert.True(t, st.GC)
			assert.Positive(t, st.HeapInuse)
			assert.Positive(t, st.Goroutines)

			resp, err := http.Post(srv.URL+"/publish?n=20&size=160&rate=2000", "", nil)
			require.NoError(t, err)
			var pub benchctl.Response
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&pub))
			resp.Body.Close()
			require.Equal(t, http.StatusAccepted, resp.StatusCode, pub.Error)
			assert.Equal(t, 20, pub.Published)
			assert.Equal(t, 160, pub.EnvelopeBytes)
			for i := range 20 {
				l := next()
				assert.Len(t, l, 160, "what the client receives is size bytes")
				assert.Contains(t, l, `{"seq":`+strconv.Itoa(i)+`,"ts":`)
			}
			require.NoError(t, ws.Close(websocket.StatusNormalClosure, ""))
			for range lines { // until the reader has exited
			}
		})
	}
}

func TestUnknownPeer(t *testing.T) {
	_, err := New("socketio")
	assert.ErrorContains(t, err, "unknown server")
}
