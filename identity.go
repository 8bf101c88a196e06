package wspub

import "time"

// maxUserIDBytes bounds Identity.UserID, which also names a broker channel.
const maxUserIDBytes = 256

// Identity is who a connection belongs to, as Options.Authenticate establishes it.
type Identity struct {
	// UserID groups a user's connections for SendToUser and MaxConnsPerUser. "" means
	// anonymous. At most 256 bytes: a longer one refuses the connection (HTTP 401).
	UserID string
	// Expires, if set, is when the identity stops being valid: the heartbeat closes the
	// connection with 1008 (policy violation) within one PingInterval after it passes.
	Expires time.Time
	// Claims are application data the handlers can read with Conn.Claims.
	Claims map[string]any
}
