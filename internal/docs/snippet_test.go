package docs

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMarkdownFindsFencedBlocksWithTheirLanguageAndLine(t *testing.T) {
	md := "# t\n\n```go\nx := 1\n```\n\n- item:\n\n  ```js\n  f();\n    g();\n  ```\n\n```\nplain\n```\n"
	got, err := Markdown("a.md", []byte(md))
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Equal(t, Snippet{File: "a.md", Line: 4, Lang: "go", Code: "x := 1\n"}, got[0])
	assert.Equal(t, Snippet{File: "a.md", Line: 10, Lang: "js", Code: "f();\n  g();\n"}, got[1], "a list item's indentation is removed")
	assert.Equal(t, "", got[2].Lang)
	assert.ErrorContains(t, CheckLang(got[2]), "a.md:15: a code block without a language")
}

func TestMarkdownRefusesABlockNeverClosed(t *testing.T) {
	_, err := Markdown("a.md", []byte("text\n```go\nx := 1\n"))
	assert.ErrorContains(t, err, "a.md:2: code block never closed")
}

func TestCheckLangRefusesUntestedLanguages(t *testing.T) {
	assert.NoError(t, CheckLang(Snippet{Lang: "go"}))
	assert.NoError(t, CheckLang(Snippet{Lang: "sh"}))
	assert.ErrorContains(t, CheckLang(Snippet{File: "a.md", Line: 3, Lang: "python"}), `a.md:3: code blocks in "python" are not tested`)
}

func TestWrapMakesAFragmentAFunction(t *testing.T) {
	src, err := Wrap(Snippet{File: "README.md", Line: 10, Lang: "go", Code: "import \"github.com/coder/websocket\" // codes\n\nn := hub.CloseUser(userID, websocket.StatusPolicyViolation, \"bye\")\n"}, "f")
	require.NoError(t, err)
	assert.Contains(t, src, `import "github.com/coder/websocket"`)
	assert.Contains(t, src, `import "github.com/wspub/wspub"`, "for the type of hub")
	assert.Contains(t, src, "func f(hub *wspub.Hub, userID string) error {")
	assert.Contains(t, src, "//line README.md:12\nn := hub.CloseUser", "the directive skips the hoisted import")
	assert.Contains(t, src, "\t_ = n\n")
}

func TestWrapTakesAListOfFieldsAsOptions(t *testing.T) {
	src, err := Wrap(Snippet{File: "a.md", Line: 1, Code: "MaxConns: 10,\n"}, "f")
	require.NoError(t, err)
	assert.Contains(t, src, "_ = wspub.Options{\n//line a.md:1\nMaxConns: 10,\n}")
}

func TestWrapDoesNotGiveWhatTheFragmentDeclares(t *testing.T) {
	src, err := Wrap(Snippet{File: "a.md", Line: 1, Code: "hub := wspub.New(nil)\nmux.Handle(\"/ws\", hub)\n"}, "f")
	require.NoError(t, err)
	assert.Contains(t, src, "func f(mux *http.ServeMux) error {")
	assert.False(t, strings.Contains(src, "hub *wspub.Hub"))
}

func TestWrapRefusesWhatIsNotGo(t *testing.T) {
	_, err := Wrap(Snippet{File: "a.md", Line: 1, Code: "this is not Go\n"}, "f")
	assert.ErrorContains(t, err, "a.md:1: neither statements nor Options fields")
}

func TestIsProgram(t *testing.T) {
	assert.True(t, IsProgram("package main\n\nfunc main() {}\n"))
	assert.False(t, IsProgram("hub := wspub.New(nil)\n"))
}
