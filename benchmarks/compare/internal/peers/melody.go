package peers

import (
	"context"
	"net/http"

	"github.com/olahol/melody"

	"github.com/wspub/wspub/benchmarks/compare/internal/bench"
	"github.com/wspub/wspub/internal/benchctl"
)

// channelKey is the session key that holds a melody session's channel.
const channelKey = "channel"

// Melody is melody as its README and examples use it: one *melody.Melody with its
// default Config (a 256-message buffer per session that drops messages when full), the
// channel kept in the session's keys, and BroadcastFilter to publish to a channel.
type Melody struct {
	m *melody.Melody
}

// NewMelody returns a melody server.
func NewMelody() *Melody {
	m := melody.New()
	m.HandleMessage(func(s *melody.Session, msg []byte) {
		channel, id, ok := bench.ParseSubscribe(msg)
		switch _, subscribed := s.Get(channelKey); {
		case !ok:
			_ = s.Write(bench.ErrorReply("bad_request", "only subscribe is served"))
		case subscribed:
			_ = s.Write(bench.ErrorReply("bad_request", "one channel per connection"))
		default:
			s.Set(channelKey, channel)
			_ = s.Write(bench.Subscribed(channel, id))
		}
	})
	return &Melody{m: m}
}

func (p *Melody) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = p.m.HandleRequest(w, r) // it has answered the request when it fails
}

// Publish sends msg to the sessions subscribed to channel. melody's hub offers it to every
// session; the filter picks.
func (p *Melody) Publish(_ context.Context, channel string, msg []byte) error {
	return p.m.BroadcastFilter(msg, func(s *melody.Session) bool {
		v, ok := s.Get(channelKey)
		return ok && v == channel
	})
}

// Layout is wspub's envelope: melody sends what it is given.
func (p *Melody) Layout(channel string) benchctl.Layout { return bench.EnvelopeLayout(channel) }

// Conns is the number of sessions.
func (p *Melody) Conns() int { return p.m.Len() }

// Close closes every session.
func (p *Melody) Close() error { return p.m.Close() }
