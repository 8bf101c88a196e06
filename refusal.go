package wspub

import (
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Refusals. Every upgrade request the hub refuses before the upgrade is counted in
// Stats.Rejected and answered with an HTTP error whose text says what to change. It is
// logged as websocket_rejected, but not every time: a browser retries a refused
// handshake for as long as the page is open, and a hostile client can send thousands of
// refusals a second, so the log takes the first refusal of each cause in every
// refusalLogInterval and counts the others in the next line's "suppressed". The causes
// that mean the server or the page is set up wrong (the three refusalCause values for
// which misconfigured is true) are logged at Warn, the others at Info.
//
// A refusal of a request that is not a WebSocket upgrade (a plain GET: what wspub.js
// sends to find out why its handshakes fail, see PROTOCOL.md) carries CORS headers, so
// that a page of another origin can read it. This is safe: such a request is refused
// before Authenticate runs, so the answer depends on no credential, and its text
// describes only the hub's configuration and the asking page's own origin; without
// Access-Control-Allow-Credentials a browser shares it only with a request made
// without cookies. What a page of any origin learns is that a wspub hub at this URL
// refuses it, which its failed handshake already told it.

// refusalLogInterval is how often at most each cause of refusal is logged.
const refusalLogInterval = time.Minute

// maxLoggedOrigins bounds the refused origins logged one by one: a client that sends
// a new Origin header with every request makes the refusals of origins beyond it share
// one line per interval (other_origins=true), not the log's or the limiter's memory
// grow. With origins cut to maxKeptHeader bytes, the limiter holds about 20 KB at most.
const maxLoggedOrigins = 64

// refusalCause is why a request was refused; each has its own log slot.
type refusalCause uint8

const (
	causeShuttingDown   refusalCause = iota // 503: Shutdown or Close has started
	causeNotHijackable                      // 501: mounted behind middleware that hides http.Hijacker
	causeOrigin                             // 403: Options.OriginPatterns does not allow the page
	causeNotUpgrade                         // 426: not a WebSocket handshake
	causeNoCredentials                      // 401: Authenticate failed and the request carried no credential
	causeBadCredentials                     // 401: Authenticate failed on a request with credentials
	causeHubFull                            // 503: Options.MaxConns
	causeUserFull                           // 429: Options.MaxConnsPerUser
	causeBadHandshake                       // 400 (or what websocket.Accept answered)
	numCauses
)

var causeNames = [numCauses]string{
	"shutting_down", "not_hijackable", "origin", "not_upgrade", "no_credentials",
	"bad_credentials", "hub_full", "user_full", "bad_handshake",
}

// misconfigured reports whether a refusal of this cause means that the server or the
// page must be changed, not that this client is unwelcome: the hub mounted behind
// middleware, a page origin missing from OriginPatterns, a client that sends no token.
func (c refusalCause) misconfigured() bool {
	return c == causeNotHijackable || c == causeOrigin || c == causeNoCredentials
}

// carriesCredentials reports whether r carries anything an Authenticate hook may take for
// a credential: a non-empty bearer.<token> subprotocol, an Authorization header, a Cookie
// header or a query string (the hub cannot know which parameter QueryToken reads). A
// 401 for a request with none of them is a client set up without its token
// (causeNoCredentials), logged at Warn.
func carriesCredentials(r *http.Request) bool {
	return SubprotocolToken(r) != "" || r.Header.Get("Authorization") != "" ||
		r.Header.Get("Cookie") != "" || r.URL.RawQuery != ""
}

// refusalLog decides which refusals are logged (see the top of this file). It is safe
// for concurrent use.
type refusalLog struct {
	interval time.Duration
	clock    func() int64 // monotonic nanoseconds (Hub.clock; a test's own clock)

	mu      sync.Mutex
	causes  [numCauses]logSlot
	origins map[string]*logSlot // refused origins (cut to maxKeptHeader), at most maxLoggedOrigins
}

// logSlot is one cause's (or one origin's) state in the refusal log.
type logSlot struct {
	next       int64  // clock time from which the next refusal is logged
	suppressed uint64 // refusals not logged since the last line
}

func newRefusalLog(clock func() int64) *refusalLog {
	return &refusalLog{interval: refusalLogInterval, clock: clock, origins: make(map[string]*logSlot)}
}

// admit reports whether a refusal of cause (of origin, for causeOrigin) is to be logged,
// with how many refusals of its slot were not logged since the slot's last line, and
// whether its slot is the one shared by the origins beyond maxLoggedOrigins.
func (l *refusalLog) admit(cause refusalCause, origin string) (log bool, suppressed uint64, shared bool) {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &l.causes[cause]
	if cause == causeOrigin {
		origin = cutUTF8(origin, maxKeptHeader)
		if o := l.origins[origin]; o != nil {
			s = o
		} else if len(l.origins) < maxLoggedOrigins || l.forgetOrigins(now) {
			s = &logSlot{}
			l.origins[strings.Clone(origin)] = s
		} else {
			shared = true
		}
	}
	if now < s.next {
		s.suppressed++
		return false, 0, shared
	}
	suppressed, s.suppressed = s.suppressed, 0
	s.next = now + int64(l.interval)
	return true, suppressed, shared
}

// forgetOrigins drops the origins whose interval has ended, moving what they suppressed
// to the shared slot so that it is still reported, and reports whether room was made.
// l.mu is held.
func (l *refusalLog) forgetOrigins(now int64) bool {
	for origin, s := range l.origins {
		if now >= s.next {
			l.causes[causeOrigin].suppressed += s.suppressed
			delete(l.origins, origin)
		}
	}
	return len(l.origins) < maxLoggedOrigins
}

// reject refuses an upgrade request with an HTTP error whose text is "wspub: " + msg, and
// counts it. extra attributes (such as the Authenticate error) go to the log only, never
// to the client.
func (h *Hub) reject(w http.ResponseWriter, r *http.Request, status int, cause refusalCause, msg string, extra ...slog.Attr) {
	if !isUpgrade(r) { // a preflight, or any other plain request (see the top of this file)
		w.Header().Add("Vary", "Origin")
		if origin := r.Header.Get("Origin"); origin != "" {
			w.Header().Set("Access-Control-Allow-Origin", origin)
		}
	}
	h.logRefusal(r, status, cause, msg, extra...)
	http.Error(w, "wspub: "+msg, status)
}

// logRefusal counts a refused request and logs it if the refusal log admits it.
func (h *Hub) logRefusal(r *http.Request, status int, cause refusalCause, msg string, extra ...slog.Attr) {
	h.stats.rejected.Add(1)
	origin := r.Header.Get("Origin")
	ok, suppressed, shared := h.refusals.admit(cause, origin)
	if !ok {
		return
	}
	level := slog.LevelInfo
	if cause.misconfigured() {
		level = slog.LevelWarn
	}
	attrs := append(make([]slog.Attr, 0, 7+len(extra)),
		slog.String("remote_addr", cutUTF8(r.RemoteAddr, maxKeptHeader)),
		slog.String("origin", cutUTF8(origin, maxKeptHeader)),
		slog.Int("status", status), slog.String("cause", causeNames[cause]), slog.String("reason", msg),
		slog.Uint64("suppressed", suppressed))
	if shared {
		attrs = append(attrs, slog.Bool("other_origins", true))
	}
	attrs = append(attrs, extra...)
	h.log.LogAttrs(r.Context(), level, "websocket_rejected", attrs...)
}
