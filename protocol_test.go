package wspub

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// checkServerFrame asserts what every frame the server writes must satisfy: valid JSON and
// UTF-8 (it goes out as a text frame) and no raw '\n' (batches are split on it).
func checkServerFrame(t *testing.T, frame []byte) {
	t.Helper()
	require.True(t, json.Valid(frame), "frame is not valid JSON: %q", frame)
	require.True(t, utf8.Valid(frame), "frame is not valid UTF-8: %q", frame)
	require.Equal(t, -1, bytes.IndexByte(frame, '\n'), "frame holds a raw newline: %q", frame)
}

// frameFields decodes a server frame into its top-level fields.
func frameFields(t *testing.T, frame []byte) map[string]json.RawMessage {
	t.Helper()
	var fields map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(frame, &fields))
	return fields
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		s    string
		max  int
		want bool
	}{
		{"one byte", "a", 10, true},
		{"typical channel", "task:42/room-1_a.b+c@d", 64, true},
		{"punctuation", `!"#$%&'()*,-./:;<=>?[\]^_{|}~`, 64, true},
		{"exactly max bytes", "abcd", 4, true},
		{"latin", "café", 10, true},
		{"cyrillic", "канал", 10, true},
		{"CJK", "日本語", 9, true},
		{"emoji", "😀", 4, true},
		{"zero-width space is neither space nor control", "a\u200bb", 10, true},
		{"empty", "", 10, false},
		{"one byte over max", "abcde", 4, false},
		{"max counts bytes, not runes", "é", 1, false},
		{"space", "a b", 10, false},
		{"leading space", " a", 10, false},
		{"trailing space", "a ", 10, false},
		{"tab", "a\tb", 10, false},
		{"newline", "a\nb", 10, false},
		{"carriage return", "a\r", 10, false},
		{"NUL", "\x00", 10, false},
		{"unit separator", "a\x1f", 10, false},
		{"DEL", "a\x7f", 10, false},
		{"C1 control", "a\u0080", 10, false},
		{"next line", "a\u0085", 10, false},
		{"no-break space", "a\u00a0b", 10, false},
		{"ideographic space", "a\u3000b", 10, false},
		{"line separator", "a\u2028b", 10, false},
		{"paragraph separator", "a\u2029b", 10, false},
		{"invalid byte", "a\xff", 10, false},
		{"truncated sequence", "a\xc3", 10, false},
		{"overlong encoding", "\xc0\xaf", 10, false},
		{"encoded surrogate", "\xed\xa0\x80", 10, false},
		// U+FFFD is a character like any other when it is encoded correctly (a JSON
		// "\ud800" decodes to it too, as "\u0041" decodes to "A": one name, two
		// spellings); only bytes that are not UTF-8 are refused.
		{"replacement character", "a\uFFFD", 10, true},
		{"zero max", "a", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, validName(tt.s, tt.max))
		})
	}
}

func TestValidateType(t *testing.T) {
	tests := []struct {
		name string
		typ  string
		want error // nil, ErrInvalidType or ErrReservedType
	}{
		{"simple", "progress", nil},
		{"dotted", "chat.message", nil},
		{"64 bytes", strings.Repeat("t", 64), nil},
		{"unicode", "ünïcode", nil},
		{"case differs from reserved", "Subscribe", nil},
		{"prefix of reserved", "sub", nil},
		{"reserved with suffix", "pinged", nil},
		{"empty", "", ErrInvalidType},
		{"65 bytes", strings.Repeat("t", 65), ErrInvalidType},
		{"space", "a b", ErrInvalidType},
		{"reserved with space is invalid first", "subscribe ", ErrInvalidType},
		{"newline", "a\n", ErrInvalidType},
		{"invalid UTF-8", "\xff", ErrInvalidType},
		{"subscribe", typeSubscribe, ErrReservedType},
		{"unsubscribe", typeUnsubscribe, ErrReservedType},
		{"ping", typePing, ErrReservedType},
		{"publish", typePublish, ErrReservedType},
		{"subscribed", typeSubscribed, ErrReservedType},
		{"unsubscribed", typeUnsubscribed, ErrReservedType},
		{"pong", typePong, ErrReservedType},
		{"error", typeError, ErrReservedType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validateType(tt.typ)
			if tt.want == nil {
				assert.NoError(t, err)
				assert.False(t, isReserved(tt.typ))
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.want)
			other := ErrReservedType
			if tt.want == ErrReservedType {
				other = ErrInvalidType
			}
			assert.False(t, errors.Is(err, other), "%v must not also be %v", err, other)
			assert.Equal(t, tt.want == ErrReservedType, isReserved(tt.typ))
		})
	}
}

// indentedMarshaler returns indented JSON; encoding/json compacts it.
type indentedMarshaler struct{}

func (indentedMarshaler) MarshalJSON() ([]byte, error) {
	return []byte("{\n  \"a\": [\n    1,\n    2\n  ]\n}"), nil
}

type failingMarshaler struct{}

func (failingMarshaler) MarshalJSON() ([]byte, error) { return nil, errors.New("boom") }

func TestEncodeMessage(t *testing.T) {
	type progress struct {
		Done  int    `json:"done"`
		Total int    `json:"total"`
		Note  string `json:"note,omitempty"`
	}
	tests := []struct {
		name    string
		channel string
		msg     Message
		want    string // exact frame
	}{
		{"struct data", "task:42", Message{Type: "progress", Data: progress{Done: 1, Total: 3}},
			`{"type":"progress","channel":"task:42","data":{"done":1,"total":3}}`},
		{"pointer to struct", "c", Message{Type: "progress", Data: &progress{Done: 2}},
			`{"type":"progress","channel":"c","data":{"done":2,"total":0}}`},
		{"map data has sorted keys", "room", Message{Type: "m", Data: map[string]int{"b": 2, "a": 1}},
			`{"type":"m","channel":"room","data":{"a":1,"b":2}}`},
		{"nil data is omitted", "room", Message{Type: "hello"}, `{"type":"hello","channel":"room"}`},
		{"no channel is omitted", "", Message{Type: "hello", Data: 1}, `{"type":"hello","data":1}`},
		{"no channel and no data", "", Message{Type: "hello"}, `{"type":"hello"}`},
		{"nil pointer data is null", "", Message{Type: "x", Data: (*progress)(nil)}, `{"type":"x","data":null}`},
		{"raw message passes through untouched", "c", Message{Type: "x", Data: json.RawMessage(`{"x": [1, 2],"y":"\u00e9"}`)},
			`{"type":"x","channel":"c","data":{"x": [1, 2],"y":"\u00e9"}}`},
		{"raw message with newlines is compacted", "c", Message{Type: "x", Data: json.RawMessage("{\n  \"x\": [\n    1,\n    2\n  ]\n}\n")},
			`{"type":"x","channel":"c","data":{"x":[1,2]}}`},
		{"raw message around newlines is compacted", "", Message{Type: "x", Data: json.RawMessage("\n 42 \n")},
			`{"type":"x","data":42}`},
		{"raw message with escaped newline is kept", "", Message{Type: "x", Data: json.RawMessage(`"a\nb"`)},
			`{"type":"x","data":"a\nb"}`},
		{"raw message with CR and tab is kept", "", Message{Type: "x", Data: json.RawMessage("[1,\r\t2]")},
			"{\"type\":\"x\",\"data\":[1,\r\t2]}"},
		{"raw null", "", Message{Type: "x", Data: json.RawMessage(`null`)}, `{"type":"x","data":null}`},
		{"string with newline escapes", "", Message{Type: "x", Data: "line1\nline2\r\n\t\u2028"},
			`{"type":"x","data":"line1\nline2\r\n\t\u2028"}`},
		{"string is HTML-escaped by encoding/json", "", Message{Type: "x", Data: "<a&b>"},
			`{"type":"x","data":"\u003ca\u0026b\u003e"}`},
		{"bytes are base64", "", Message{Type: "x", Data: []byte("hi")}, `{"type":"x","data":"aGk="}`},
		{"bool", "", Message{Type: "x", Data: false}, `{"type":"x","data":false}`},
		{"float", "", Message{Type: "x", Data: -0.5e10}, `{"type":"x","data":-5000000000}`},
		{"nested newline in struct", "", Message{Type: "x", Data: progress{Note: "a\nb"}},
			`{"type":"x","data":{"done":0,"total":0,"note":"a\nb"}}`},
		{"indented Marshaler output is compacted", "", Message{Type: "x", Data: indentedMarshaler{}},
			`{"type":"x","data":{"a":[1,2]}}`},
		{"raw message nested in a map is compacted", "", Message{Type: "x", Data: map[string]json.RawMessage{"r": json.RawMessage("[\n1\n]")}},
			`{"type":"x","data":{"r":[1]}}`},
		{"channel is escaped", `a"b\c`, Message{Type: "x"}, `{"type":"x","channel":"a\"b\\c"}`},
		{"unicode type", "kanál", Message{Type: "ünïcode"}, `{"type":"ünïcode","channel":"kanál"}`},
		{"type of 64 bytes", "", Message{Type: strings.Repeat("t", 64)}, `{"type":"` + strings.Repeat("t", 64) + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame, err := encodeMessage(tt.channel, tt.msg)
			require.NoError(t, err)
			assert.Equal(t, tt.want, string(frame))
			checkServerFrame(t, frame)

			fields := frameFields(t, frame)
			var typ string
			require.NoError(t, json.Unmarshal(fields["type"], &typ))
			assert.Equal(t, tt.msg.Type, typ)
			if tt.channel == "" {
				assert.NotContains(t, fields, "channel")
			} else {
				var ch string
				require.NoError(t, json.Unmarshal(fields["channel"], &ch))
				assert.Equal(t, tt.channel, ch)
			}
			wantFields := 1
			if tt.channel != "" {
				wantFields++
			}
			if tt.msg.Data != nil {
				wantFields++
			}
			assert.Len(t, fields, wantFields)
			if tt.msg.Data == nil {
				assert.NotContains(t, fields, "data")
			} else {
				require.Contains(t, fields, "data")
				want, err := json.Marshal(tt.msg.Data)
				require.NoError(t, err)
				assert.JSONEq(t, string(want), string(fields["data"]))
			}
		})
	}
}

func TestEncodeMessageErrors(t *testing.T) {
	tests := []struct {
		name string
		msg  Message
		want error
	}{
		{"reserved type subscribed", Message{Type: typeSubscribed}, ErrReservedType},
		{"reserved type error", Message{Type: typeError, Data: 1}, ErrReservedType},
		{"reserved type ping", Message{Type: typePing}, ErrReservedType},
		{"empty type", Message{}, ErrInvalidType},
		{"type with space", Message{Type: "a b"}, ErrInvalidType},
		{"type with newline", Message{Type: "a\nb"}, ErrInvalidType},
		{"type of 65 bytes", Message{Type: strings.Repeat("t", 65)}, ErrInvalidType},
		{"type with invalid UTF-8", Message{Type: "a\xff"}, ErrInvalidType},
		{"invalid raw message", Message{Type: "x", Data: json.RawMessage(`{"a":`)}, ErrInvalidData},
		{"raw message with two values", Message{Type: "x", Data: json.RawMessage(`1 2`)}, ErrInvalidData},
		{"raw message with trailing comma", Message{Type: "x", Data: json.RawMessage("[1,\n]")}, ErrInvalidData},
		{"empty raw message", Message{Type: "x", Data: json.RawMessage{}}, ErrInvalidData},
		// A nil json.RawMessage in the interface is not a nil Data: it is rejected as
		// invalid JSON rather than omitted or encoded as null.
		{"nil raw message", Message{Type: "x", Data: json.RawMessage(nil)}, ErrInvalidData},
		{"channel data", Message{Type: "x", Data: make(chan int)}, ErrInvalidData},
		{"func data", Message{Type: "x", Data: func() {}}, ErrInvalidData},
		{"NaN", Message{Type: "x", Data: math.NaN()}, ErrInvalidData},
		{"infinity in a map", Message{Type: "x", Data: map[string]float64{"a": math.Inf(1)}}, ErrInvalidData},
		{"failing Marshaler", Message{Type: "x", Data: failingMarshaler{}}, ErrInvalidData},
		{"map with unsupported key", Message{Type: "x", Data: map[[2]int]int{{1, 2}: 3}}, ErrInvalidData},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame, err := encodeMessage("c", tt.msg)
			require.Error(t, err)
			assert.Nil(t, frame)
			assert.ErrorIs(t, err, tt.want)
		})
	}
}

// TestEncodeMessageRawInvalidUTF8 covers raw data that is valid JSON to json.Valid but
// holds invalid UTF-8: a text frame must never carry it.
func TestEncodeMessageRawInvalidUTF8(t *testing.T) {
	tests := []struct{ name, raw string }{
		{"invalid byte in string", "\"\xff\""},
		{"truncated sequence in object", "{\"a\":\"\xc3\"}"},
		{"encoded surrogate in array", "[\"\xed\xa0\x80\"]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := encodeMessage("", Message{Type: "x", Data: json.RawMessage(tt.raw)})
			assert.ErrorIs(t, err, ErrInvalidData)
		})
	}
}

func TestEncodeReply(t *testing.T) {
	tests := []struct {
		name, typ, channel, id string
		want                   string
	}{
		{"pong", typePong, "", "", `{"type":"pong"}`},
		{"pong with id", typePong, "", "7", `{"type":"pong","id":"7"}`},
		{"subscribed", typeSubscribed, "room:1", "abc", `{"type":"subscribed","channel":"room:1","id":"abc"}`},
		{"unsubscribed without id", typeUnsubscribed, "room:1", "", `{"type":"unsubscribed","channel":"room:1"}`},
		{"unicode channel", typeSubscribed, "канал", "", `{"type":"subscribed","channel":"канал"}`},
		{"id with quote, newline, unicode and control", typePong, "", "a\"b\n\u00e9\x01\\",
			`{"type":"pong","id":"a\"b\né\u0001\\"}`},
		{"id with invalid UTF-8", typePong, "", "a\xffb", `{"type":"pong","id":"a\ufffdb"}`},
		{"id with HTML characters", typePong, "", "<&>", `{"type":"pong","id":"<&>"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := encodeReply(tt.typ, tt.channel, tt.id)
			assert.Equal(t, tt.want, string(frame))
			checkServerFrame(t, frame)

			var got struct {
				Type    string  `json:"type"`
				Channel *string `json:"channel"`
				ID      *string `json:"id"`
			}
			dec := json.NewDecoder(bytes.NewReader(frame))
			dec.DisallowUnknownFields()
			require.NoError(t, dec.Decode(&got))
			assert.Equal(t, tt.typ, got.Type)
			assertOptionalString(t, tt.channel, got.Channel, "channel")
			assertOptionalString(t, strings.ToValidUTF8(tt.id, "\uFFFD"), got.ID, "id")
		})
	}
}

// assertOptionalString checks a field that is sent only when non-empty.
func assertOptionalString(t *testing.T, want string, got *string, field string) {
	t.Helper()
	if want == "" {
		assert.Nil(t, got, "%s must be omitted", field)
		return
	}
	if assert.NotNil(t, got, "%s must be present", field) {
		assert.Equal(t, want, *got, field)
	}
}

func TestEncodeError(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		id   string
		want string
	}{
		{"without id", &Error{Code: CodeInvalidMessage, Message: "bad"}, "",
			`{"type":"error","code":"invalid_message","message":"bad"}`},
		{"with id", &Error{Code: CodeForbidden, Message: "no"}, "42",
			`{"type":"error","code":"forbidden","message":"no","id":"42"}`},
		{"message with quotes", &Error{Code: CodeInvalidMessage, Message: `field "type" must be a string`}, "",
			`{"type":"error","code":"invalid_message","message":"field \"type\" must be a string"}`},
		{"message with escapes", &Error{Code: "app_code", Message: "a\\b\nc\td\re\x00f\x1f<>&é"}, "i\"d",
			`{"type":"error","code":"app_code","message":"a\\b\nc\td\re\u0000f\u001f<>&é","id":"i\"d"}`},
		{"empty message", &Error{Code: CodeInternal}, "", `{"type":"error","code":"internal","message":""}`},
		{"invalid UTF-8 in message", &Error{Code: "c", Message: "\xc3("}, "", `{"type":"error","code":"c","message":"\ufffd("}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := encodeError(tt.err, "", tt.id)
			assert.Equal(t, tt.want, string(frame))
			checkServerFrame(t, frame)

			var got struct {
				Type    string  `json:"type"`
				Code    string  `json:"code"`
				Message string  `json:"message"`
				ID      *string `json:"id"`
			}
			dec := json.NewDecoder(bytes.NewReader(frame))
			dec.DisallowUnknownFields()
			require.NoError(t, dec.Decode(&got))
			assert.Equal(t, typeError, got.Type)
			assert.Equal(t, tt.err.Code, got.Code)
			assert.Equal(t, strings.ToValidUTF8(tt.err.Message, "\uFFFD"), got.Message)
			assertOptionalString(t, tt.id, got.ID, "id")
		})
	}
}

// TestEncodeErrorEchoesDecodedID ties the decoder to the error reply: what the decoder
// returns as the id of a rejected frame is echoed, escaped, in a valid frame.
func TestEncodeErrorEchoesDecodedID(t *testing.T) {
	m, perr := decodeClientMessage([]byte(`{"id":"a\"\n\u00e9","type":"x","bogus":1}`), decodeTestLimits)
	require.NotNil(t, perr)
	require.Equal(t, "a\"\né", m.ID)
	frame := encodeError(perr, "", m.ID)
	checkServerFrame(t, frame)
	var got struct{ ID, Code string }
	require.NoError(t, json.Unmarshal(frame, &got))
	assert.Equal(t, m.ID, got.ID)
	assert.Equal(t, CodeInvalidMessage, got.Code)
}

func TestAppendJSONString(t *testing.T) {
	var all strings.Builder
	for c := 0; c < utf8.RuneSelf; c++ {
		all.WriteByte(byte(c))
	}
	tests := []struct {
		name string
		s    string
		want string // exact output, if set
	}{
		{"empty", "", `""`},
		{"plain", "hello", `"hello"`},
		{"quote and backslash", `a"b\c`, `"a\"b\\c"`},
		{"short escapes", "\n\r\t", `"\n\r\t"`},
		{"backspace and form feed use \\u", "\b\f", `"\u0008\u000c"`},
		{"NUL and unit separator", "\x00\x1f", `"\u0000\u001f"`},
		{"DEL is not escaped", "\x7f", "\"\x7f\""},
		{"HTML characters are not escaped", "<>&", `"<>&"`},
		{"slash is not escaped", "a/b", `"a/b"`},
		{"unicode is kept", "é日😀", `"é日😀"`},
		{"line separators are kept", "\u2028\u2029", "\"\u2028\u2029\""},
		{"invalid byte", "a\xffb", `"a\ufffdb"`},
		{"truncated sequence at end", "a\xc3", `"a\ufffd"`},
		{"overlong encoding, one per byte", "\xc0\xaf", `"\ufffd\ufffd"`},
		{"encoded surrogate, one per byte", "\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`},
		{"beyond U+10FFFF", "\xf4\x90\x80\x80", `"\ufffd\ufffd\ufffd\ufffd"`},
		{"valid replacement character is kept", "\uFFFD", "\"\uFFFD\""},
		{"every ASCII byte", all.String(), ""},
		{"mixed", "id-1 \"quoted\"\n\ttab <tag> & \\ é \x01 \xff end", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte(`{"k":`)
			out := appendJSONString(append([]byte(nil), prefix...), tt.s)
			require.True(t, bytes.HasPrefix(out, prefix), "the prefix must be kept")
			out = out[len(prefix):]
			if tt.want != "" {
				assert.Equal(t, tt.want, string(out))
			}
			checkServerFrame(t, out)

			var got string
			require.NoError(t, json.Unmarshal(out, &got))
			marshaled, err := json.Marshal(tt.s)
			require.NoError(t, err)
			var want string
			require.NoError(t, json.Unmarshal(marshaled, &want))
			assert.Equal(t, want, got, "appendJSONString and json.Marshal must decode to the same string")
			assert.Equal(t, strings.ToValidUTF8(tt.s, "\uFFFD") == tt.s, got == tt.s,
				"only invalid UTF-8 changes in a round trip")
		})
	}
}

func BenchmarkEncodeMessage(b *testing.B) {
	type point struct {
		X, Y float64
		Tag  string `json:"tag"`
	}
	raw := json.RawMessage(`{"done":17,"total":42,"note":"processing chunk 17 of 42","tags":["a","b","c"]}`)
	msgs := []struct {
		name string
		msg  Message
	}{
		{"raw message", Message{Type: "progress", Data: raw}},
		{"struct", Message{Type: "progress", Data: point{X: 1.5, Y: -2, Tag: "north-east"}}},
	}
	for _, m := range msgs {
		b.Run(m.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := encodeMessage("task:42", m.msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
