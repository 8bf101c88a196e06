package peers

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/centrifugal/centrifuge"

	"github.com/wspub/wspub/internal/benchctl"
)

// Centrifuge is a centrifuge Node as its README sets one up: the default Config (memory
// broker, 1 MiB queue per client, pings every 25 s), anonymous Credentials put in the
// request's context by a middleware, every subscription accepted in OnSubscribe, and
// Node.Publish to publish. Clients speak its own JSON protocol (wspub-bench run -proto
// centrifuge): connect and subscribe commands, publications in push replies.
type Centrifuge struct {
	node    *centrifuge.Node
	handler http.Handler
}

// NewCentrifuge returns a running centrifuge Node.
func NewCentrifuge() (*Centrifuge, error) {
	node, err := centrifuge.New(centrifuge.Config{LogLevel: centrifuge.LogLevelError})
	if err != nil {
		return nil, err
	}
	node.OnConnect(func(client *centrifuge.Client) {
		client.OnSubscribe(func(_ centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
			cb(centrifuge.SubscribeReply{}, nil)
		})
	})
	if err := node.Run(); err != nil {
		return nil, err
	}
	return &Centrifuge{node: node, handler: centrifuge.NewWebsocketHandler(node, centrifuge.WebsocketConfig{})}, nil
}

func (p *Centrifuge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := centrifuge.SetCredentials(r.Context(), &centrifuge.Credentials{UserID: ""}) // anonymous
	p.handler.ServeHTTP(w, r.WithContext(ctx))
}

// Publish publishes msg, the bench data, through the Node's broker.
func (p *Centrifuge) Publish(_ context.Context, channel string, msg []byte) error {
	_, err := p.node.Publish(channel, msg)
	return err
}

// Layout is the bench data alone: centrifuge sends it as
// {"push":{"channel":C,"pub":{"data":D}}}.
func (p *Centrifuge) Layout(channel string) benchctl.Layout {
	ch, _ := json.Marshal(channel) // a string always encodes
	return benchctl.Layout{Extra: len(`{"push":{"channel":`) + len(ch) + len(`,"pub":{"data":`) + len(`}}}`)}
}

// Conns is the number of clients connected to the Node.
func (p *Centrifuge) Conns() int { return p.node.Hub().NumClients() }

// Close shuts the Node down, disconnecting every client.
func (p *Centrifuge) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return p.node.Shutdown(ctx)
}
