package wsframe

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestAppendClient: the header carries FIN, the opcode, the mask bit and the length in
// 7, 16 or 64 bits; the payload is masked with the key, and unmasking it gives it back.
func TestAppendClient(t *testing.T) {
	for _, tt := range []struct {
		name   string
		n      int
		header int // bytes before the masking key
	}{
		{"empty", 0, 2},
		{"7-bit length", 125, 2},
		{"16-bit length", 126, 4},
		{"64-bit length", 70_000, 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			payload := bytes.Repeat([]byte("x"), tt.n)
			const key = 0x01020304
			f := AppendClient([]byte("prefix"), OpText, true, key, payload)
			f = f[len("prefix"):]
			assert.Equal(t, byte(0x80|OpText), f[0])
			assert.Equal(t, byte(0x80), f[1]&0x80, "masked")
			assert.Equal(t, uint32(key), binary.BigEndian.Uint32(f[tt.header:]))
			body := f[tt.header+4:]
			assert.Len(t, body, tt.n)
			for i := range body {
				body[i] ^= f[tt.header+i&3]
			}
			assert.Equal(t, payload, body)
		})
	}
	f := AppendClient(nil, OpContinuation, false, 0, []byte("ab"))
	assert.Equal(t, []byte{0x00, 0x82, 0, 0, 0, 0, 'a', 'b'}, f, "no FIN, zero key: the payload as it is")
}
