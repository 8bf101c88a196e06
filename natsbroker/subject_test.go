package natsbroker

import (
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSubjectRoundTrip: every channel name, including wspub's internal names with spaces
// and user IDs of any bytes, maps to one valid subject token without wildcard meaning,
// and back.
func TestSubjectRoundTrip(t *testing.T) {
	b := &Broker{prefix: "wspub."}
	names := []string{
		"news", "a.b", ".", "..", "*", ">", "a.*", "news.>", "*.>",
		"wspub broadcast", "wspub user alice", "wspub user  two  spaces\t\n",
		"чат", "🎉.*.>", "x=y/z?&#%+", "-_", "é",
		strings.Repeat("界", 66) + "ab", // 200 bytes, the hub's default MaxChannelBytes
		strings.Repeat("a", 2900),      // a long user ID
		"\x00\xff\xfe not UTF-8",
	}
	seen := make(map[string]string)
	for _, name := range names {
		subject, err := b.subject(name)
		require.NoError(t, err, "name %q", name)
		token, ok := strings.CutPrefix(subject, "wspub.")
		require.True(t, ok, subject)
		assert.NotEmpty(t, token)
		assert.LessOrEqual(t, len(subject), MaxSubjectBytes)
		for _, r := range token {
			assert.False(t, r == '.' || r == '*' || r == '>' || unicode.IsSpace(r) || unicode.IsControl(r) || r > unicode.MaxASCII,
				"name %q: token %q holds %q", name, token, r)
		}
		got, ok := b.channel(subject)
		require.True(t, ok, "subject %q", subject)
		assert.Equal(t, name, got)
		if other, dup := seen[subject]; dup {
			t.Errorf("%q and %q share the subject %q", name, other, subject)
		}
		seen[subject] = name
	}
}

func TestSubjectRefused(t *testing.T) {
	b := &Broker{prefix: "wspub."}
	for _, name := range []string{"", strings.Repeat("a", 3000)} {
		_, err := b.subject(name)
		assert.ErrorIs(t, err, ErrInvalidName, "name of %d bytes", len(name))
	}
	for _, subject := range []string{"other.YQ", "wspub.", "wspub", "wspub.!!", "wspub.YQ=", "wspubx.YQ"} {
		_, ok := b.channel(subject)
		assert.False(t, ok, "subject %q", subject)
	}
}

func TestPrefix(t *testing.T) {
	for _, p := range []string{"wspub", "app.wspub", "a-b_c.1", "Ünïcode"} {
		assert.NoError(t, validPrefix(p), p)
	}
	for _, p := range []string{"a..b", ".a", "a.", "a b", "a\tb", "a.*", "a>", "*", ">", "a.>", "a\x7f", strings.Repeat("a", MaxSubjectBytes)} {
		assert.Error(t, validPrefix(p), p)
	}
	_, err := New(nil, nil)
	assert.Error(t, err, "a nil connection")
}

func TestOptionsDefaults(t *testing.T) {
	o := (*Options)(nil).withDefaults()
	assert.Equal(t, "wspub", o.Prefix)
	assert.Equal(t, defaultBufferSize, o.BufferSize)
	assert.Equal(t, defaultTimeout, o.Timeout)
	assert.Equal(t, 64, o.MaxPendingPublishes)
	assert.False(t, o.Confirm)
	assert.NotNil(t, o.Logger, "nil means silent, not a nil pointer to call")

	in := &Options{Prefix: "p", BufferSize: 3}
	o = in.withDefaults()
	assert.Equal(t, "p", o.Prefix)
	assert.Equal(t, 3, o.BufferSize)
	assert.Nil(t, in.Logger, "the caller's Options are not changed")
}
