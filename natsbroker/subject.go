package natsbroker

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// A channel name becomes one subject token in unpadded base64url. Its alphabet
// (A-Z a-z 0-9 - _) has none of the characters a token cannot hold ('.', '*', '>',
// whitespace), the encoding is one-to-one, and a non-empty name gives a non-empty token.
// So every wspub channel name, the hub's internal names with spaces, and any user ID get
// a subject of their own that no wildcard semantics apply to.
var tokenEncoding = base64.RawURLEncoding

// subject returns the subject of a channel name.
func (b *Broker) subject(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidName)
	}
	n := len(b.prefix) + tokenEncoding.EncodedLen(len(name))
	if n > MaxSubjectBytes {
		return "", fmt.Errorf("%w: its subject would be %d bytes, more than MaxSubjectBytes (%d)",
			ErrInvalidName, n, MaxSubjectBytes)
	}
	s := make([]byte, 0, n)
	s = append(s, b.prefix...)
	return string(tokenEncoding.AppendEncode(s, []byte(name))), nil
}

// channel returns the channel name of a subject, and false for a subject that is not
// one of the Broker's.
func (b *Broker) channel(subject string) (string, bool) {
	token, ok := strings.CutPrefix(subject, b.prefix)
	if !ok || token == "" {
		return "", false
	}
	name, err := tokenEncoding.DecodeString(token)
	if err != nil {
		return "", false
	}
	return string(name), true
}

// validPrefix accepts a subject without wildcards: non-empty tokens separated by dots,
// with no whitespace, control characters, '*' or '>'.
func validPrefix(p string) error {
	for _, token := range strings.Split(p, ".") {
		if token == "" {
			return fmt.Errorf("natsbroker: invalid Prefix %q: empty token", p)
		}
		for i := 0; i < len(token); i++ {
			if c := token[i]; c <= ' ' || c == 0x7f || c == '*' || c == '>' {
				return fmt.Errorf("natsbroker: invalid Prefix %q: byte %q not allowed", p, c)
			}
		}
	}
	if len(p)+2 > MaxSubjectBytes {
		return fmt.Errorf("natsbroker: invalid Prefix: %d bytes", len(p))
	}
	return nil
}
