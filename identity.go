package wspub

import (
	"time"

	"github.com/coder/websocket"
)

// StatusIdentityExpired (4001, reason "identity expired") is the close code of a
// connection whose Identity.Expires has passed. Unlike 1008, which tells a client to stop
// until something changes, it means: get a new token and reconnect (wspub.js does so
// with its token function).
const StatusIdentityExpired websocket.StatusCode = 4001

// maxUserIDBytes bounds Identity.UserID, which also names a broker channel.
const maxUserIDBytes = 256

// Identity is who a connection belongs to, as Options.Authenticate establishes it.
type Identity struct {
	// UserID groups a user's connections for SendToUser and MaxConnsPerUser. "" means
	// anonymous. At most 256 bytes: a longer one refuses the connection (HTTP 401).
	UserID string
	// Expires, if set, is when the identity stops being valid: the heartbeat closes the
	// connection with StatusIdentityExpired (4001) within one PingInterval after it
	// passes, and the client reconnects with a fresh token.
	Expires time.Time
	// Claims are application data the handlers can read with Conn.Claims.
	Claims map[string]any
}
