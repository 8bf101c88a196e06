package wspub

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// decodeTestLimits are small so that the tables and the fuzzer reach the limits easily.
var decodeTestLimits = decodeLimits{maxChannel: 32, maxData: 256, maxChannels: 4}

// nestedArrays returns depth nested arrays with x innermost: [[[x]]].
func nestedArrays(depth int, x string) string {
	return strings.Repeat("[", depth) + x + strings.Repeat("]", depth)
}

// nestedObjects returns depth nested objects: {"a":{"a":{}}} has depth 3.
func nestedObjects(depth int) string {
	return strings.Repeat(`{"a":`, depth-1) + "{}" + strings.Repeat("}", depth-1)
}

// nestedMixed alternates depth objects and arrays: {"a":[{"a":[null]}]}.
func nestedMixed(depth int) string {
	var open strings.Builder
	closers := make([]byte, 0, depth)
	for i := 0; i < depth; i++ {
		if i%2 == 0 {
			open.WriteString(`{"a":`)
			closers = append(closers, '}')
		} else {
			open.WriteString("[")
			closers = append(closers, ']')
		}
	}
	for i, j := 0, len(closers)-1; i < j; i, j = i+1, j-1 {
		closers[i], closers[j] = closers[j], closers[i]
	}
	return open.String() + "null" + string(closers)
}

// dataOfSize returns a JSON string value exactly n bytes long (n >= 2).
func dataOfSize(n int) string {
	return `"` + strings.Repeat("a", n-2) + `"`
}

// wireEnvelope is how encoding/json sees a client frame. Pointers tell absent from empty.
type wireEnvelope struct {
	Type     *string         `json:"type"`
	ID       *string         `json:"id"`
	Channel  *string         `json:"channel"`
	Channels *[]string       `json:"channels"`
	Data     json.RawMessage `json:"data"`
}

// checkAcceptedFrame asserts the properties every accepted frame has: it is valid JSON,
// encoding/json in strict mode decodes it to the same fields, and the fields obey the
// protocol's limits. The fuzzer calls it, so it uses plain checks, not testify's reflection.
func checkAcceptedFrame(t *testing.T, b []byte, m ClientMessage, lim decodeLimits) {
	t.Helper()
	switch {
	case !json.Valid(b):
		t.Fatalf("accepted frame is not valid JSON: %q", b)
	case !utf8.Valid(b):
		t.Fatalf("accepted frame is not valid UTF-8: %q", b)
	case !validName(m.Type, maxTypeBytes): // also: not empty, at most 64 bytes, valid UTF-8
		t.Fatalf("accepted type %q breaks the naming rules: %q", m.Type, b)
	case len(m.ID) > maxIDBytes || !utf8.ValidString(m.ID):
		t.Fatalf("accepted id %q is too long or not UTF-8: %q", m.ID, b)
	case m.Channel != "" && !validName(m.Channel, lim.maxChannel):
		t.Fatalf("accepted channel %q breaks the naming rules: %q", m.Channel, b)
	case m.Data != nil && (!json.Valid(m.Data) || len(m.Data) > lim.maxData):
		t.Fatalf("accepted data %q is invalid or over %d bytes: %q", m.Data, lim.maxData, b)
	}

	var w wireEnvelope
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		t.Fatalf("encoding/json rejects accepted frame %q: %v", b, err)
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	var names []string
	for _, n := range m.channels {
		names = append(names, n.name)
	}
	switch {
	case (w.Channels == nil) != (m.channels == nil):
		t.Fatalf("encoding/json disagrees on the presence of channels in %q", b)
	case w.Channels != nil && !slices.Equal(*w.Channels, names):
		t.Fatalf("encoding/json disagrees on channels in %q: %q, decoder %q", b, *w.Channels, names)
	case m.channels != nil && (m.Type != typeSubscribe && m.Type != typeUnsubscribe || m.Channel != "" ||
		len(m.channels) == 0 || len(m.channels) > lim.maxChannels):
		t.Fatalf("accepted channels %q of a %q message (channel %q): %q", names, m.Type, m.Channel, b)
	}
	if w.Type == nil || *w.Type != m.Type || str(w.ID) != m.ID || str(w.Channel) != m.Channel ||
		!bytes.Equal(w.Data, m.Data) || (w.Data == nil) != (m.Data == nil) {
		t.Fatalf("encoding/json disagrees on %q:\ndecoder:       type=%q id=%q channel=%q data=%q\nencoding/json: type=%q id=%q channel=%q data=%q",
			b, m.Type, m.ID, m.Channel, m.Data, str(w.Type), str(w.ID), str(w.Channel), w.Data)
	}
}

// checkAcceptedFrameGeneric decodes an accepted frame into a map, as a client library
// would, and compares the string fields.
func checkAcceptedFrameGeneric(t *testing.T, b []byte, m ClientMessage) {
	t.Helper()
	var generic map[string]any
	require.NoError(t, json.Unmarshal(b, &generic))
	assert.Equal(t, m.Type, generic["type"], "type")
	for key, got := range map[string]string{"id": m.ID, "channel": m.Channel} {
		if v, ok := generic[key]; ok {
			assert.Equal(t, got, v, key)
		} else {
			assert.Empty(t, got, key)
		}
	}
	if m.Data != nil {
		assert.Contains(t, generic, "data")
	} else {
		assert.NotContains(t, generic, "data")
	}
}

func TestDecodeClientMessageAccepts(t *testing.T) {
	long64 := strings.Repeat("i", 64)
	longType := strings.Repeat("t", 64)
	longChannel := strings.Repeat("c", decodeTestLimits.maxChannel)
	maxData := dataOfSize(decodeTestLimits.maxData)
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }

	tests := []struct {
		name string
		in   string
		want ClientMessage
	}{
		{"minimal", `{"type":"x"}`, ClientMessage{Type: "x"}},
		{"all fields", `{"type":"chat","id":"42","channel":"room:1","data":{"text":"hi"}}`,
			ClientMessage{Type: "chat", ID: "42", Channel: "room:1", Data: raw(`{"text":"hi"}`)}},
		{"fields in any order", `{"data":1,"channel":"c","id":"i","type":"t"}`,
			ClientMessage{Type: "t", ID: "i", Channel: "c", Data: raw(`1`)}},
		{"subscribe", `{"type":"subscribe","channel":"task:42","id":"1"}`,
			ClientMessage{Type: "subscribe", ID: "1", Channel: "task:42"}},
		{"ping without id", `{"type":"ping"}`, ClientMessage{Type: "ping"}},
		{"reserved server types are decoded (the dispatcher rejects them)", `{"type":"error"}`,
			ClientMessage{Type: "error"}},
		{"whitespace everywhere", " \t\r\n{ \"type\" : \"x\" ,\n\"data\" :\n[ 1 , 2 ]\n}\n\t ",
			ClientMessage{Type: "x", Data: raw("[ 1 , 2 ]")}},
		{"trailing whitespace", "{\"type\":\"x\"}\r\n", ClientMessage{Type: "x"}},
		{"empty id", `{"type":"x","id":""}`, ClientMessage{Type: "x"}},

		// Escapes.
		{"escaped latin letter in type", `{"type":"caf\u00e9"}`, ClientMessage{Type: "café"}},
		{"escaped ascii in type", `{"type":"\u0061b"}`, ClientMessage{Type: "ab"}},
		{"surrogate pair in id", `{"type":"x","id":"\ud83d\ude00"}`, ClientMessage{Type: "x", ID: "😀"}},
		{"upper-case hex surrogate pair", `{"type":"x","id":"\uD83D\uDE00!"}`, ClientMessage{Type: "x", ID: "😀!"}},
		{"newline escape in id", `{"type":"x","id":"a\nb"}`, ClientMessage{Type: "x", ID: "a\nb"}},
		{"every short escape in id", `{"type":"x","id":"\"\\\/\b\f\n\r\t"}`,
			ClientMessage{Type: "x", ID: "\"\\/\b\f\n\r\t"}},
		{"escaped NUL in id", `{"type":"x","id":"\u0000"}`, ClientMessage{Type: "x", ID: "\x00"}},
		{"raw DEL in id", "{\"type\":\"x\",\"id\":\"a\x7fb\"}", ClientMessage{Type: "x", ID: "a\x7fb"}},
		{"escaped slash in channel", `{"type":"x","channel":"a\/b"}`, ClientMessage{Type: "x", Channel: "a/b"}},
		{"raw UTF-8 channel", `{"type":"x","channel":"канал"}`, ClientMessage{Type: "x", Channel: "канал"}},
		{"escaped quote in type", `{"type":"a\"b"}`, ClientMessage{Type: `a"b`}},

		// Lone surrogates become U+FFFD, as with encoding/json (documented on stringValue).
		{"lone high surrogate", `{"type":"x","id":"\ud800"}`, ClientMessage{Type: "x", ID: "\uFFFD"}},
		{"lone low surrogate", `{"type":"x","id":"a\udc00b"}`, ClientMessage{Type: "x", ID: "a\uFFFDb"}},
		{"high surrogate then non-surrogate escape", `{"type":"x","id":"\ud800\u0041"}`,
			ClientMessage{Type: "x", ID: "\uFFFDA"}},
		{"high surrogate twice then low", `{"type":"x","id":"\ud800\ud800\udc00"}`,
			ClientMessage{Type: "x", ID: "\uFFFD\U00010000"}},
		{"low then high surrogate", `{"type":"x","id":"\udc00\ud800"}`,
			ClientMessage{Type: "x", ID: "\uFFFD\uFFFD"}},
		{"high surrogate then short escape", `{"type":"x","id":"\ud800\n"}`,
			ClientMessage{Type: "x", ID: "\uFFFD\n"}},

		// Limits, exactly at the edge.
		{"id of 64 bytes", `{"type":"x","id":"` + long64 + `"}`, ClientMessage{Type: "x", ID: long64}},
		{"id of 64 bytes after unescaping", `{"type":"x","id":"` + strings.Repeat(`\u00e9`, 32) + `"}`,
			ClientMessage{Type: "x", ID: strings.Repeat("é", 32)}},
		{"type of 64 bytes", `{"type":"` + longType + `"}`, ClientMessage{Type: longType}},
		{"channel of maxChannel bytes", `{"type":"x","channel":"` + longChannel + `"}`,
			ClientMessage{Type: "x", Channel: longChannel}},

		// Data of every kind; Data is the raw value, without the whitespace around it.
		{"data object", `{"type":"x","data":{"a":[1,{"b":null}],"c":"d"}}`,
			ClientMessage{Type: "x", Data: raw(`{"a":[1,{"b":null}],"c":"d"}`)}},
		{"data empty object", `{"type":"x","data":{ }}`, ClientMessage{Type: "x", Data: raw(`{ }`)}},
		{"data array", `{"type":"x","data":[1,"two",true,null,{}]}`,
			ClientMessage{Type: "x", Data: raw(`[1,"two",true,null,{}]`)}},
		{"data empty array", `{"type":"x","data":[]}`, ClientMessage{Type: "x", Data: raw(`[]`)}},
		{"data string", `{"type":"x","data":"hello"}`, ClientMessage{Type: "x", Data: raw(`"hello"`)}},
		{"data string with escapes kept raw", `{"type":"x","data":"a\n\u00e9\ud83d\ude00\"\\"}`,
			ClientMessage{Type: "x", Data: raw(`"a\n\u00e9\ud83d\ude00\"\\"`)}},
		{"data with lone surrogate kept raw", `{"type":"x","data":"\ud800"}`,
			ClientMessage{Type: "x", Data: raw(`"\ud800"`)}},
		{"data zero", `{"type":"x","data":0}`, ClientMessage{Type: "x", Data: raw(`0`)}},
		{"data negative zero", `{"type":"x","data":-0}`, ClientMessage{Type: "x", Data: raw(`-0`)}},
		{"data integer", `{"type":"x","data":12345678901234567890}`,
			ClientMessage{Type: "x", Data: raw(`12345678901234567890`)}},
		{"data negative exponent float", `{"type":"x","data":-0.5e10}`, ClientMessage{Type: "x", Data: raw(`-0.5e10`)}},
		{"data upper-case exponent with sign", `{"type":"x","data":1E+2}`, ClientMessage{Type: "x", Data: raw(`1E+2`)}},
		{"data negative exponent", `{"type":"x","data":1e-2}`, ClientMessage{Type: "x", Data: raw(`1e-2`)}},
		{"data fraction", `{"type":"x","data":3.14}`, ClientMessage{Type: "x", Data: raw(`3.14`)}},
		{"data zero fraction exponent", `{"type":"x","data":0.0e0}`, ClientMessage{Type: "x", Data: raw(`0.0e0`)}},
		{"data true", `{"type":"x","data":true}`, ClientMessage{Type: "x", Data: raw(`true`)}},
		{"data false", `{"type":"x","data":false}`, ClientMessage{Type: "x", Data: raw(`false`)}},
		{"data null", `{"type":"x","data":null}`, ClientMessage{Type: "x", Data: raw(`null`)}},
		{"data with whitespace inside", "{\"type\":\"x\",\"data\": { \"a\" :\n[ 1 ,\t2 ] } }",
			ClientMessage{Type: "x", Data: raw("{ \"a\" :\n[ 1 ,\t2 ] }")}},
		{"data keys are not restricted", `{"type":"x","data":{"type":1,"Type":2,"a":1,"a":2,"\u0000":3}}`,
			ClientMessage{Type: "x", Data: raw(`{"type":1,"Type":2,"a":1,"a":2,"\u0000":3}`)}},
		{"data arrays nested 32 deep", `{"type":"x","data":` + nestedArrays(32, "1") + `}`,
			ClientMessage{Type: "x", Data: raw(nestedArrays(32, "1"))}},
		{"data objects nested 32 deep", `{"type":"x","data":` + nestedObjects(32) + `}`,
			ClientMessage{Type: "x", Data: raw(nestedObjects(32))}},
		{"data mixed containers nested 32 deep", `{"type":"x","data":` + nestedMixed(32) + `}`,
			ClientMessage{Type: "x", Data: raw(nestedMixed(32))}},
		{"data of exactly maxData bytes", `{"type":"x","data":` + maxData + `}`,
			ClientMessage{Type: "x", Data: raw(maxData)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := []byte(tt.in)
			m, err := decodeClientMessage(b, decodeTestLimits)
			require.Nil(t, err, "decode %q: %v", tt.in, err)
			assert.Equal(t, tt.want, m)
			checkAcceptedFrame(t, b, m, decodeTestLimits)
			checkAcceptedFrameGeneric(t, b, m)
		})
	}
}

func TestDecodeClientMessageDataIsACopy(t *testing.T) {
	b := []byte(`{"type":"x","data":[1,2,3]}`)
	m, err := decodeClientMessage(b, decodeTestLimits)
	require.Nil(t, err)
	for i := range b {
		b[i] = 'z'
	}
	assert.Equal(t, `[1,2,3]`, string(m.Data), "Data must not alias the frame, which is reused")
}

func TestDecodeClientMessageRejects(t *testing.T) {
	long65 := strings.Repeat("i", 65)
	over := dataOfSize(decodeTestLimits.maxData + 1)
	const (
		invalid = CodeInvalidMessage
		channel = CodeInvalidChannel
	)

	tests := []struct {
		name   string
		in     string
		code   string
		wantID string // the id decoded before the error, for the reply to echo
	}{
		// Not an object.
		{"empty frame", ``, invalid, ""},
		{"only whitespace", " \n\t", invalid, ""},
		{"array", `[]`, invalid, ""},
		{"array of object", `[{"type":"x"}]`, invalid, ""},
		{"string", `"x"`, invalid, ""},
		{"number", `1`, invalid, ""},
		{"null", `null`, invalid, ""},
		{"true", `true`, invalid, ""},
		{"byte order mark", "\xef\xbb\xbf{\"type\":\"x\"}", invalid, ""},
		{"form feed is not JSON whitespace", "\f{\"type\":\"x\"}", invalid, ""},
		{"no-break space is not JSON whitespace", "{\u00a0\"type\":\"x\"}", invalid, ""},

		// Malformed JSON.
		{"lone brace", `{`, invalid, ""},
		{"truncated after key", `{"type`, invalid, ""},
		{"truncated after colon", `{"type":`, invalid, ""},
		{"truncated in value", `{"type":"x`, invalid, ""},
		{"truncated before brace", `{"type":"x"`, invalid, ""},
		{"truncated after comma", `{"type":"x",`, invalid, ""},
		{"truncated data", `{"type":"x","id":"1","data":[1,2`, invalid, "1"},
		{"truncated escape", `{"type":"x\`, invalid, ""},
		{"trailing comma", `{"type":"x",}`, invalid, ""},
		{"leading comma", `{,"type":"x"}`, invalid, ""},
		{"double comma", `{"type":"x",,"id":"1"}`, invalid, ""},
		{"trailing comma in data array", `{"id":"1","type":"x","data":[1,]}`, invalid, "1"},
		{"trailing comma in data object", `{"id":"1","type":"x","data":{"a":1,}}`, invalid, "1"},
		{"missing comma", `{"type":"x" "id":"1"}`, invalid, ""},
		{"missing colon", `{"type" "x"}`, invalid, ""},
		{"missing value", `{"type":}`, invalid, ""},
		{"missing data value", `{"id":"1","type":"x","data":}`, invalid, "1"},
		{"single-quoted key", `{'type':'x'}`, invalid, ""},
		{"single-quoted value", `{"type":'x'}`, invalid, ""},
		{"unquoted key", `{type:"x"}`, invalid, ""},
		{"unquoted key in data", `{"type":"x","data":{a:1}}`, invalid, ""},
		{"number key in data", `{"type":"x","data":{1:2}}`, invalid, ""},
		{"missing colon in data", `{"type":"x","data":{"a" 1}}`, invalid, ""},
		{"mismatched brackets in data", `{"type":"x","data":[1}}`, invalid, ""},
		{"comment", `{"type":"x"/*c*/}`, invalid, ""},

		// Strings.
		{"unknown escape", `{"type":"\x"}`, invalid, ""},
		{"escaped single quote", `{"type":"\'"}`, invalid, ""},
		{"upper-case U escape", `{"type":"\U0041"}`, invalid, ""},
		{"short unicode escape", `{"type":"\u12"}`, invalid, ""},
		{"bad hex in unicode escape", `{"type":"\u12G4"}`, invalid, ""},
		{"bad escape in data", `{"type":"x","data":"\a"}`, invalid, ""},
		{"bad escape in key", `{"ty\pe":"x"}`, invalid, ""},
		{"raw newline in id", "{\"id\":\"a\nb\",\"type\":\"x\"}", invalid, ""},
		{"raw tab in type", "{\"type\":\"a\tb\"}", invalid, ""},
		{"raw NUL in channel", "{\"type\":\"x\",\"channel\":\"a\x00\"}", invalid, ""},
		{"raw 0x1f in data", "{\"id\":\"1\",\"type\":\"x\",\"data\":\"\x1f\"}", invalid, "1"},
		{"raw control in key", "{\"type\x01\":\"x\"}", invalid, ""},

		// Invalid UTF-8 anywhere rejects the whole frame before anything is decoded.
		{"invalid UTF-8 in type", "{\"type\":\"\xff\"}", invalid, ""},
		{"invalid UTF-8 in id", "{\"type\":\"x\",\"id\":\"a\xc3\"}", invalid, ""},
		{"invalid UTF-8 in channel", "{\"type\":\"x\",\"channel\":\"\xc3\x28\"}", invalid, ""},
		{"invalid UTF-8 in data", "{\"id\":\"1\",\"type\":\"x\",\"data\":\"\xff\"}", invalid, ""},
		{"overlong UTF-8 in data", "{\"type\":\"x\",\"data\":\"\xc0\xaf\"}", invalid, ""},
		{"UTF-8 encoded surrogate in data", "{\"type\":\"x\",\"data\":\"\xed\xa0\x80\"}", invalid, ""},
		{"UTF-8 beyond U+10FFFF in data", "{\"type\":\"x\",\"data\":\"\xf4\x90\x80\x80\"}", invalid, ""},
		{"invalid UTF-8 outside strings", "{\"type\":\"x\"}\xff", invalid, ""},

		// Fields.
		{"unknown field", `{"type":"x","foo":1}`, invalid, ""},
		{"unknown field after id", `{"id":"7","type":"x","extra":true}`, invalid, "7"},
		{"escaped field name", `{"typ\u0065":"x"}`, invalid, ""},
		{"mixed-case type key", `{"Type":"x"}`, invalid, ""},
		{"mixed-case id key", `{"type":"x","ID":"1"}`, invalid, ""},
		{"mixed-case channel key", `{"type":"x","Channel":"c"}`, invalid, ""},
		{"upper-case data key", `{"type":"x","DATA":1}`, invalid, ""},
		{"empty key", `{"":"x"}`, invalid, ""},
		{"duplicate type", `{"type":"x","type":"y"}`, invalid, ""},
		{"duplicate id", `{"id":"1","type":"x","id":"2"}`, invalid, "1"},
		{"duplicate channel", `{"type":"x","channel":"a","channel":"b"}`, invalid, ""},
		{"duplicate data", `{"type":"x","id":"9","data":1,"data":2}`, invalid, "9"},

		// Wrong types.
		{"type as number", `{"type":1}`, invalid, ""},
		{"type as null", `{"type":null}`, invalid, ""},
		{"type as array", `{"type":["x"]}`, invalid, ""},
		{"id as bool", `{"type":"x","id":true}`, invalid, ""},
		{"id as number", `{"type":"x","id":42}`, invalid, ""},
		{"id as null", `{"type":"x","id":null}`, invalid, ""},
		{"channel as object", `{"id":"3","type":"x","channel":{}}`, invalid, "3"},
		{"channel as number", `{"type":"x","channel":1}`, invalid, ""},

		// Type rules.
		{"empty object", `{}`, invalid, ""},
		{"missing type", `{"id":"9"}`, invalid, "9"},
		{"missing type with channel and data", `{"channel":"c","data":1}`, invalid, ""},
		{"empty type", `{"type":"","id":"4"}`, invalid, "4"},
		{"type of 65 bytes", `{"type":"` + strings.Repeat("t", 65) + `","id":"5"}`, invalid, "5"},
		{"type with space", `{"type":"a b"}`, invalid, ""},
		{"type with escaped tab", `{"type":"a\tb"}`, invalid, ""},
		{"type with escaped NUL", `{"type":"\u0000"}`, invalid, ""},
		{"type with escaped DEL", `{"type":"a\u007f"}`, invalid, ""},
		{"type with no-break space", `{"type":"a\u00a0b"}`, invalid, ""},
		{"type with line separator", `{"type":"a\u2028b"}`, invalid, ""},
		{"type with C1 control", `{"type":"a\u0085"}`, invalid, ""},
		{"type with lone surrogate", `{"type":"\ud800"}`, invalid, ""},

		// Id limit: an over-long id is never returned.
		{"id of 65 bytes", `{"type":"x","id":"` + long65 + `"}`, invalid, ""},
		{"id of 66 bytes after unescaping", `{"type":"x","id":"` + strings.Repeat(`\u00e9`, 33) + `"}`, invalid, ""},

		// Channel rules.
		{"empty channel", `{"id":"c1","type":"subscribe","channel":""}`, channel, "c1"},
		{"channel with space", `{"id":"c2","type":"subscribe","channel":"a b"}`, channel, "c2"},
		{"channel with escaped newline", `{"type":"subscribe","channel":"a\nb"}`, channel, ""},
		{"channel with escaped control", `{"type":"x","channel":"a\u0001"}`, channel, ""},
		{"channel with raw DEL", "{\"type\":\"x\",\"channel\":\"a\x7f\"}", channel, ""},
		{"channel with ideographic space", `{"type":"x","channel":"a\u3000b"}`, channel, ""},
		{"channel with lone surrogate", `{"type":"x","channel":"\udc00"}`, channel, ""},
		{"channel of maxChannel+1 bytes",
			`{"type":"x","id":"6","channel":"` + strings.Repeat("c", decodeTestLimits.maxChannel+1) + `"}`, channel, "6"},

		// Data limits.
		{"data arrays nested 33 deep", `{"id":"d","type":"x","data":` + nestedArrays(33, "1") + `}`, invalid, "d"},
		{"data objects nested 33 deep", `{"type":"x","data":` + nestedObjects(33) + `}`, invalid, ""},
		{"data mixed containers nested 33 deep", `{"type":"x","data":` + nestedMixed(33) + `}`, invalid, ""},
		{"data deeply nested", `{"type":"x","data":` + nestedArrays(10000, "") + `}`, invalid, ""},
		{"data of maxData+1 bytes", `{"id":"d","type":"x","data":` + over + `}`, invalid, "d"},

		// Numbers in data.
		{"number with leading zero", `{"type":"x","data":01}`, invalid, ""},
		{"negative number with leading zero", `{"type":"x","data":-01}`, invalid, ""},
		{"double zero", `{"type":"x","data":00}`, invalid, ""},
		{"number with trailing dot", `{"type":"x","data":1.}`, invalid, ""},
		{"number with dot before exponent", `{"type":"x","data":1.e5}`, invalid, ""},
		{"number with plus sign", `{"type":"x","data":+1}`, invalid, ""},
		{"number with leading dot", `{"type":"x","data":.5}`, invalid, ""},
		{"number with empty exponent", `{"type":"x","data":1e}`, invalid, ""},
		{"number with signed empty exponent", `{"type":"x","data":1e+}`, invalid, ""},
		{"lone minus", `{"type":"x","data":-}`, invalid, ""},
		{"double minus", `{"type":"x","data":--1}`, invalid, ""},
		{"hex number", `{"type":"x","data":0x10}`, invalid, ""},
		{"NaN", `{"type":"x","data":NaN}`, invalid, ""},
		{"Infinity", `{"type":"x","data":-Infinity}`, invalid, ""},
		{"truncated number at end of frame", `{"type":"x","data":1`, invalid, ""},

		// Literals in data.
		{"truncated true", `{"type":"x","data":tru}`, invalid, ""},
		{"truncated null", `{"type":"x","data":nul}`, invalid, ""},
		{"truncated false", `{"type":"x","data":fals}`, invalid, ""},
		{"capitalised literal", `{"type":"x","data":True}`, invalid, ""},
		{"upper-case literal", `{"type":"x","data":NULL}`, invalid, ""},
		{"literal with trailing letters", `{"type":"x","data":truex}`, invalid, ""},
		{"literal at end of frame", `{"type":"x","data":nu`, invalid, ""},

		// One object per frame.
		{"two objects", `{"type":"x"}{"type":"y"}`, invalid, ""},
		{"two objects separated by space", `{"type":"x"} {"type":"y"}`, invalid, ""},
		{"batch of two lines", "{\"type\":\"x\",\"id\":\"1\"}\n{\"type\":\"y\"}", invalid, "1"},
		{"trailing garbage", `{"type":"x"}x`, invalid, ""},
		{"trailing brace", `{"type":"x"}}`, invalid, ""},
		{"trailing comma after object", `{"type":"x"},`, invalid, ""},
		{"trailing NUL", "{\"type\":\"x\"}\x00", invalid, ""},
		{"trailing value after id", `{"id":"8","type":"x"} 1`, invalid, "8"},

		// A batch's "channels".
		{"channels not an array", `{"type":"subscribe","channels":"a","id":"c1"}`, invalid, "c1"},
		{"channels null", `{"type":"subscribe","channels":null,"id":"c2"}`, invalid, "c2"},
		{"channels an object", `{"type":"subscribe","channels":{"a":1},"id":"c3"}`, invalid, "c3"},
		{"channels with a number", `{"type":"subscribe","channels":["a",1],"id":"c4"}`, invalid, "c4"},
		{"channels with null", `{"type":"subscribe","channels":[null],"id":"c5"}`, invalid, "c5"},
		{"channels with an array", `{"type":"subscribe","channels":[["a"]],"id":"c6"}`, invalid, "c6"},
		{"channels empty", `{"type":"subscribe","channels":[],"id":"c7"}`, invalid, "c7"},
		{"channels empty with space", `{"type":"unsubscribe","channels":[ ],"id":"c8"}`, invalid, "c8"},
		{"channels over the limit", `{"type":"subscribe","channels":["a","b","c","d","e"],"id":"c9"}`, invalid, "c9"},
		{"channel then channels", `{"type":"subscribe","channel":"a","channels":["b"],"id":"ca"}`, invalid, "ca"},
		{"channels then channel", `{"type":"subscribe","channels":["b"],"channel":"a","id":"cb"}`, invalid, "cb"},
		{"channels then empty channel", `{"type":"subscribe","channels":["b"],"channel":"","id":"cc"}`, invalid, "cc"},
		{"duplicate channels", `{"type":"subscribe","channels":["a"],"channels":["b"],"id":"cd"}`, invalid, "cd"},
		{"channels on ping", `{"type":"ping","channels":["a"],"id":"ce"}`, invalid, "ce"},
		{"channels on publish", `{"type":"publish","channels":["a"],"id":"cf"}`, invalid, "cf"},
		{"channels on an application type", `{"channels":["a"],"type":"chat","id":"cg"}`, invalid, "cg"},
		{"mis-cased channels", `{"type":"subscribe","Channels":["a"],"id":"ch"}`, invalid, "ch"},
		{"channels unterminated", `{"type":"subscribe","channels":["a"`, invalid, ""},
		{"channels trailing comma", `{"type":"subscribe","channels":["a",]}`, invalid, ""},
		{"channels bad string", `{"type":"subscribe","channels":["a\x"]}`, invalid, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := decodeClientMessage([]byte(tt.in), decodeTestLimits)
			require.NotNil(t, err, "decode %q accepted it: %+v", tt.in, m)
			assert.Equal(t, tt.code, err.Code, "message: %s", err.Message)
			assert.NotEmpty(t, err.Message)
			assert.Equal(t, tt.wantID, m.ID, "id returned for the error reply")
			assert.LessOrEqual(t, len(m.ID), maxIDBytes)
			assert.Contains(t, err.Error(), tt.code)
		})
	}
}

// TestDecodeClientMessageUnknownFieldMessage checks that the error for an unknown field
// quotes the client's key cut short, on a rune boundary, so the reply stays small and valid.
func TestDecodeClientMessageUnknownFieldMessage(t *testing.T) {
	tests := []struct {
		name, key, wantQuoted string
	}{
		{"short key", "foo", `"foo"`},
		{"32-byte key is kept", strings.Repeat("k", 32), `"` + strings.Repeat("k", 32) + `"`},
		{"long key is cut", strings.Repeat("k", 1000), `"` + strings.Repeat("k", 32) + `…"`},
		{"cut on a rune boundary", strings.Repeat("日", 20), `"` + strings.Repeat("日", 10) + `…"`},
		{"escapes are quoted raw", `a\"b`, `"a\\\"b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeClientMessage([]byte(`{"type":"x","`+tt.key+`":1}`), decodeTestLimits)
			require.NotNil(t, err)
			assert.Equal(t, CodeInvalidMessage, err.Code)
			assert.Equal(t, "unknown field "+tt.wantQuoted, err.Message)
			assert.True(t, utf8.ValidString(err.Message))
			checkServerFrame(t, encodeError(err, "", ""))
		})
	}
}

// TestDecodeClientMessageNeverReturnsLongID covers errors that happen after an over-long
// id was decoded: the reply must not echo it, whatever the error.
func TestDecodeClientMessageNeverReturnsLongID(t *testing.T) {
	long := strings.Repeat("i", maxIDBytes+1)
	tests := []struct {
		name string
		in   string
		code string
	}{
		{"valid otherwise", `{"type":"x","id":"` + long + `"}`, CodeInvalidMessage},
		{"missing type", `{"id":"` + long + `"}`, CodeInvalidMessage},
		{"invalid type", `{"type":"a b","id":"` + long + `"}`, CodeInvalidMessage},
		{"unknown field", `{"id":"` + long + `","type":"x","foo":1}`, CodeInvalidMessage},
		{"duplicate field", `{"id":"` + long + `","type":"x","type":"y"}`, CodeInvalidMessage},
		{"malformed data", `{"id":"` + long + `","type":"x","data":[}`, CodeInvalidMessage},
		{"trailing garbage", `{"id":"` + long + `","type":"x"}x`, CodeInvalidMessage},
		{"empty channel", `{"id":"` + long + `","type":"x","channel":""}`, CodeInvalidChannel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := decodeClientMessage([]byte(tt.in), decodeTestLimits)
			require.NotNil(t, err)
			assert.Equal(t, tt.code, err.Code)
			assert.Empty(t, m.ID)
		})
	}
}

func FuzzDecodeClientMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"subscribe","channel":"task:42","id":"1"}`,
		`{"type":"unsubscribe","channel":"room:1"}`,
		`{"type":"ping","id":"p"}`,
		`{"type":"chat","id":"42","channel":"room:1","data":{"text":"hi","n":[1,-0.5e10,true,false,null]}}`,
		" {\n\"data\" : [ 1 , \"\\u00e9\" ] ,\t\"type\":\"x\" }\r\n",
		`{"type":"x","id":"\ud83d\ude00\ud800\n\"\\\/\b\f\r\t\u0000"}`,
		`{"type":"x","data":` + nestedArrays(32, "0") + `}`,
		`{"type":"x","data":` + nestedArrays(33, "0") + `}`,
		`{"type":"x","data":` + dataOfSize(decodeTestLimits.maxData) + `}`,
		`{"id":"` + strings.Repeat("i", 65) + `","type":"x"}`,
		`{"type":"x","Type":"y","type":"z"}`,
		`{"type":"x"}{"type":"y"}`,
		"{\"type\":\"\xff\"}",
		`{"type":"x","data":01}`,
		`{"type":"subscribe","channels":["a","b:1","a"],"id":"1"}`,
		`{"channels":["a", "\ud800", ""],"type":"unsubscribe"}`,
		`{"type":"subscribe","channels":[]}`,
		`{"type":"subscribe","channels":["a","b","c","d","e"]}`,
		`{"type":"subscribe","channels":["a",1]}`,
		`{"type":"subscribe","channels":"a"}`,
		`{"type":"subscribe","channel":"a","channels":["a"]}`,
		`{"type":"ping","channels":["a"]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// Plain checks on the rejection path, which most inputs take: testify's
		// reflection would dominate the fuzzer's time.
		in := append([]byte(nil), b...)
		m, err := decodeClientMessage(b, decodeTestLimits)
		if !bytes.Equal(in, b) {
			t.Fatalf("the decoder modified its input: %q became %q", in, b)
		}
		if err != nil {
			if err.Code != CodeInvalidMessage && err.Code != CodeInvalidChannel {
				t.Fatalf("unexpected error code %q (%s) for %q", err.Code, err.Message, b)
			}
			if err.Message == "" {
				t.Fatalf("error %q without a message for %q", err.Code, b)
			}
			if len(m.ID) > maxIDBytes {
				t.Fatalf("over-long id (%d bytes) returned for the reply to echo: %q", len(m.ID), b)
			}
			return
		}
		checkAcceptedFrame(t, b, m, decodeTestLimits)
	})
}

func BenchmarkDecodeClientMessage(b *testing.B) {
	lim := decodeLimits{maxChannel: defaultMaxChannelBytes, maxData: defaultMaxMessageBytes}
	data, jerr := json.Marshal(map[string]any{
		"text":   strings.Repeat("lorem ipsum ", 10),
		"room":   "general",
		"values": []float64{1, 2.5, -3e4, 42},
		"flags":  map[string]bool{"urgent": true, "silent": false},
	})
	require.NoError(b, jerr)
	frames := []struct {
		name  string
		frame string
	}{
		{"subscribe", `{"type":"subscribe","channel":"task:42","id":"17"}`},
		{"custom with ~200B data", `{"type":"chat","id":"m-1","channel":"room:general","data":` + string(data) + `}`},
	}
	for _, fr := range frames {
		b.Run(fr.name, func(b *testing.B) {
			frame := []byte(fr.frame)
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				if _, err := decodeClientMessage(frame, lim); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
