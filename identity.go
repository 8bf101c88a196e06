package wspub

import "time"

// Identity is who a connection belongs to, as Options.Authenticate establishes it.
type Identity struct {
	// UserID groups a user's connections for SendToUser. "" means anonymous.
	UserID string
	// Expires, if set, is when the identity stops being valid: the heartbeat closes the
	// connection with 1008 (policy violation) within one PingInterval after it passes.
	Expires time.Time
	// Claims are application data the handlers can read with Conn.Claims.
	Claims map[string]any
}
