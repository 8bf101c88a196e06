package wspub

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// decodeLimits bound what decodeClientMessage accepts.
type decodeLimits struct {
	maxChannel  int // bytes in a channel name
	maxData     int // bytes in the raw data value
	maxChannels int // names in a batch's "channels"; 0: no limit
}

// decodeClientMessage strictly decodes one client frame: a single JSON object whose only
// keys are "type", "id", "channel", "channels" and "data", each at most once and spelled
// exactly so. "type", "id" and "channel" must be strings; "channels" (subscribe and
// unsubscribe only, instead of "channel") a non-empty array of at most maxChannels
// strings, whose names are checked by the caller, one by one; "data" any JSON value
// nested at most maxDataDepth deep. The returned message holds whatever was decoded
// before an error, so the reply can echo the client's id.
func decodeClientMessage(b []byte, lim decodeLimits) (ClientMessage, *Error) {
	var m ClientMessage
	if !utf8.Valid(b) {
		return m, invalidMessage("message is not valid UTF-8")
	}
	d := decoder{b: b}
	err := d.object(&m, lim)
	if n := len(m.ID); n > maxIDBytes {
		m.ID = "" // never echo an over-long id, whatever else is wrong
		if err == nil {
			err = invalidMessage("\"id\" is " + strconv.Itoa(n) + " bytes; the limit is 64")
		}
	}
	if err != nil {
		return m, err
	}
	switch {
	case m.Type == "":
		return m, invalidMessage(`missing "type"`)
	case !validName(m.Type, maxTypeBytes):
		return m, invalidMessage(`"type" must be 1..64 bytes with no whitespace or control characters`)
	case m.channels != nil && m.Type != typeSubscribe && m.Type != typeUnsubscribe:
		return m, invalidMessage(`"channels" is only for subscribe and unsubscribe`)
	case m.Channel != "" && !validName(m.Channel, lim.maxChannel):
		return m, channelError(m.Channel, false, lim.maxChannel)
	}
	return m, nil
}

// channelError returns the invalid_channel error of a channel name that breaks the naming
// rules, or nil; lone says its JSON had an unpaired surrogate escape (decoded as U+FFFD:
// a name is text, and a broken escape is not). It checks the "channel" of a message and
// every name of a batch's "channels" alike.
func channelError(name string, lone bool, maxBytes int) *Error {
	switch {
	case name == "":
		return &Error{Code: CodeInvalidChannel, Message: "channel name is empty"}
	case lone:
		return &Error{Code: CodeInvalidChannel, Message: "channel name has an unpaired surrogate escape"}
	case !validName(name, maxBytes):
		return &Error{Code: CodeInvalidChannel, Message: "channel names are 1.." +
			strconv.Itoa(maxBytes) + " bytes of UTF-8 with no whitespace or control characters"}
	}
	return nil
}

func invalidMessage(msg string) *Error {
	return &Error{Code: CodeInvalidMessage, Message: msg}
}

// decoder is a strict, allocation-light JSON scanner for the one object shape clients send.
type decoder struct {
	b []byte
	i int
}

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) peek() byte {
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

func (d *decoder) object(m *ClientMessage, lim decodeLimits) *Error {
	d.ws()
	if d.peek() != '{' {
		return invalidMessage("message must be a JSON object")
	}
	d.i++
	// Syntax errors end decoding at once. A well-formed frame with a bad field is read to
	// the end, so that its id can still be echoed; the first such error is returned.
	var bad *Error
	fail := func(e *Error) {
		if bad == nil {
			bad = e
		}
	}
	var seen [5]bool // type, id, channel, data, channels
	for first := true; ; first = false {
		d.ws()
		if first && d.peek() == '}' {
			d.i++
			break
		}
		if d.peek() != '"' {
			return invalidMessage("malformed JSON: expected a field name")
		}
		keyStart := d.i + 1
		raw, ok := d.skipString()
		if !ok {
			return invalidMessage("malformed JSON: bad string")
		}
		keyEnd := d.i - 1
		key := string(raw[1 : len(raw)-1]) // escapes are kept, so "typ\u0065" is unknown
		field := -1
		switch key {
		case "type":
			field = 0
		case "id":
			field = 1
		case "channel":
			field = 2
		case "data":
			field = 3
		case "channels":
			field = 4
		}
		d.ws()
		if d.peek() != ':' {
			return invalidMessage("malformed JSON: expected ':'")
		}
		d.i++
		d.ws()
		start := d.i
		switch {
		case field < 0:
			fail(invalidMessage("unknown field " + strconv.Quote(truncate(string(d.b[keyStart:keyEnd]), 32))))
		case seen[field]:
			fail(invalidMessage("duplicate field " + strconv.Quote(key)))
		case field == 4:
			seen[field] = true
			if seen[2] {
				fail(invalidMessage(`give "channel" or "channels", not both`))
			}
			if d.peek() != '[' {
				fail(invalidMessage(`"channels" must be an array of strings`))
				break // skipped below
			}
			names, err := d.names(lim.maxChannels)
			if err != nil {
				if err.Code == "" { // well-formed, but not a list of names: go on
					err.Code = CodeInvalidMessage
					fail(err)
					start = -1
					break
				}
				return err
			}
			m.channels = names
			start = -1
		case field == 3:
			seen[field] = true
			if err := d.skipValue(0); err != nil {
				return err
			}
			if d.i-start > lim.maxData {
				fail(invalidMessage("\"data\" is larger than " + strconv.Itoa(lim.maxData) + " bytes"))
			} else {
				m.Data = append([]byte(nil), d.b[start:d.i]...)
			}
			start = -1 // value consumed
		case d.peek() != '"':
			seen[field] = true
			fail(invalidMessage("field " + strconv.Quote(key) + " must be a string"))
		default:
			seen[field] = true
			s, ok, lone := d.stringValue()
			if !ok {
				return invalidMessage("malformed JSON: bad string")
			}
			switch field {
			case 0:
				m.Type = s
				if lone {
					fail(invalidMessage(`"type" has an unpaired surrogate escape`))
				}
			case 1:
				m.ID = s
			case 2:
				m.Channel = s
				switch {
				case seen[4]:
					fail(invalidMessage(`give "channel" or "channels", not both`))
				case s == "" || lone: // its length is checked once the type is known good
					fail(channelError(s, lone, lim.maxChannel))
				}
			}
			start = -1
		}
		if start >= 0 { // a value that is not kept: check its syntax and move past it
			if err := d.skipValue(0); err != nil {
				return err
			}
		}
		d.ws()
		switch d.peek() {
		case ',':
			d.i++
			continue
		case '}':
			d.i++
		default:
			return invalidMessage("malformed JSON: expected ',' or '}'")
		}
		break
	}
	d.ws()
	if d.i != len(d.b) {
		return invalidMessage("one JSON object per frame; found data after it")
	}
	return bad
}

// names decodes the array of strings of a batch's "channels", at most max of them (0: no
// limit). It returns a syntax error as such, and an *Error without a Code for a
// well-formed value that is not a list of 1..max strings, having skipped it whole.
func (d *decoder) names(max int) ([]batchName, *Error) {
	start := d.i
	d.i++ // '['
	var names []batchName
	var bad *Error
	for first := true; ; first = false {
		d.ws()
		if first && d.peek() == ']' {
			d.i++
			break
		}
		if d.peek() != '"' {
			bad = &Error{Message: `"channels" must be an array of strings`}
			d.i = start
			if err := d.skipValue(0); err != nil {
				return nil, err
			}
			return nil, bad
		}
		s, ok, lone := d.stringValue()
		if !ok {
			return nil, invalidMessage("malformed JSON: bad string")
		}
		if max == 0 || len(names) < max {
			names = append(names, batchName{name: s, lone: lone})
		} else if bad == nil {
			bad = &Error{Message: `"channels" names more than ` + strconv.Itoa(max) + " channels"}
		}
		d.ws()
		switch d.peek() {
		case ',':
			d.i++
			continue
		case ']':
			d.i++
		default:
			return nil, invalidMessage("malformed JSON: expected ',' or ']'")
		}
		break
	}
	switch {
	case bad != nil:
		return nil, bad
	case len(names) == 0:
		return nil, &Error{Message: `"channels" is empty`}
	}
	return names, nil
}

// skipValue skips one JSON value, checking its syntax and nesting depth.
func (d *decoder) skipValue(depth int) *Error {
	switch c := d.peek(); {
	case c == '{' || c == '[':
		if depth >= maxDataDepth {
			return invalidMessage("\"data\" is nested deeper than " + strconv.Itoa(maxDataDepth) + " levels")
		}
		return d.skipContainer(depth)
	case c == '"':
		if _, ok := d.skipString(); !ok {
			return invalidMessage("malformed JSON: bad string")
		}
		return nil
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		if !d.skipNumber() {
			return invalidMessage("malformed JSON: bad number")
		}
		return nil
	}
	return invalidMessage("malformed JSON: expected a value")
}

func (d *decoder) skipContainer(depth int) *Error {
	closer := byte(']')
	isObject := d.b[d.i] == '{'
	if isObject {
		closer = '}'
	}
	d.i++
	d.ws()
	if d.peek() == closer {
		d.i++
		return nil
	}
	for {
		d.ws()
		if isObject {
			if d.peek() != '"' {
				return invalidMessage("malformed JSON: expected a field name")
			}
			if _, ok := d.skipString(); !ok {
				return invalidMessage("malformed JSON: bad string")
			}
			d.ws()
			if d.peek() != ':' {
				return invalidMessage("malformed JSON: expected ':'")
			}
			d.i++
			d.ws()
		}
		if err := d.skipValue(depth + 1); err != nil {
			return err
		}
		d.ws()
		switch d.peek() {
		case ',':
			d.i++
		case closer:
			d.i++
			return nil
		default:
			return invalidMessage("malformed JSON: expected ',' or '" + string(closer) + "'")
		}
	}
}

func (d *decoder) literal(word string) *Error {
	if len(d.b)-d.i < len(word) || string(d.b[d.i:d.i+len(word)]) != word {
		return invalidMessage("malformed JSON: bad literal")
	}
	d.i += len(word)
	return nil
}

// skipNumber follows RFC 8259: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *decoder) skipNumber() bool {
	digits := func() int {
		n := 0
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.peek() == '-' {
		d.i++
	}
	switch c := d.peek(); {
	case c == '0':
		d.i++
	case c >= '1' && c <= '9':
		digits()
	default:
		return false
	}
	if d.peek() == '.' {
		d.i++
		if digits() == 0 {
			return false
		}
	}
	if c := d.peek(); c == 'e' || c == 'E' {
		d.i++
		if c := d.peek(); c == '+' || c == '-' {
			d.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}

// skipString skips a JSON string starting at its opening quote and returns it raw,
// quotes included. The input is already known to be valid UTF-8.
func (d *decoder) skipString() ([]byte, bool) {
	start := d.i
	d.i++
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return d.b[start:d.i], true
		case c < 0x20:
			return nil, false
		case c == '\\':
			d.i++
			switch d.peek() {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.i++
			case 'u':
				if _, ok := hex4(d.b, d.i+1); !ok {
					return nil, false
				}
				d.i += 5
			default:
				return nil, false
			}
		default:
			d.i++
		}
	}
	return nil, false
}

// stringValue decodes a JSON string starting at its opening quote. Lone surrogates
// become U+FFFD, as encoding/json does, and are reported (lone), so that names can
// refuse them.
func (d *decoder) stringValue() (s string, ok, lone bool) {
	raw, ok := d.skipString()
	if !ok {
		return "", false, false
	}
	body := raw[1 : len(raw)-1]
	escaped := false
	for _, c := range body {
		if c == '\\' {
			escaped = true
			break
		}
	}
	if !escaped {
		return string(body), true, false
	}
	out := make([]byte, 0, len(body))
	for i := 0; i < len(body); {
		c := body[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		e := body[i+1]
		i += 2
		switch e {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, _ := hex4(body, i)
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+6 <= len(body) && body[i] == '\\' && body[i+1] == 'u' {
					r2, _ = hex4(body, i+2)
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
					lone = true
				}
			}
			out = utf8.AppendRune(out, r)
		default: // '"', '\\', '/'
			out = append(out, e)
		}
	}
	return string(out), true, lone
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return cutUTF8(s, n) + "…"
}
