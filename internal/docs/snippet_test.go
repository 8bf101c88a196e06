package docs

import (
	"os"
	"path/filepath"
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

func TestMarkdownFindsTildeAndQuotedFences(t *testing.T) {
	md := "~~~go\nx := 1\n~~~\n\n> ```js\n> f();\n> ```\n\n````html\n```\n<p>\n````\n"
	got, err := Markdown("a.md", []byte(md))
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Equal(t, "go", got[0].Lang)
	assert.Equal(t, "x := 1\n", got[0].Code)
	assert.Equal(t, Snippet{File: "a.md", Line: 6, Lang: "js", Code: "f();\n"}, got[1], "the quote markers are removed")
	assert.Equal(t, "```\n<p>\n", got[2].Code, "a shorter fence does not close a longer one")
}

func TestMarkdownRefusesIndentedCodeBlocks(t *testing.T) {
	_, err := Markdown("a.md", []byte("Text.\n\n    x := 1\n"))
	assert.ErrorContains(t, err, "a.md:3: an indented code block")

	_, err = Markdown("a.md", []byte("- item\n\n    more of the item\n- next\n"))
	assert.NoError(t, err, "a list item's continuation is not code")
}

func TestFindTakesPackageCommentsOfLibrariesNotOfCommands(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644))
	}
	write("lib/lib.go", "// Package lib does things:\n//\n//\tlib.Do()\npackage lib\n")
	write("cmd/tool/main.go", "// Command tool:\n//\n//\tgo run ./cmd/tool\npackage main\n")
	write("lib/lib_test.go", "// Package lib:\n//\n//\tnot this\npackage lib\n")
	got, err := Find(dir)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, Snippet{File: "lib/lib.go", Line: 3, Lang: "go", Code: "lib.Do()\n"}, got[0])
}

func TestWrapHoistsAnImportGroup(t *testing.T) {
	src, err := Wrap(Snippet{File: "a.md", Line: 1, Code: "import (\n\t\"github.com/redis/go-redis/v9\"\n\t\"strings\" // why\n)\n\nx := redis.Nil\n"}, "f")
	require.NoError(t, err)
	assert.Contains(t, src, `import "github.com/redis/go-redis/v9"`)
	assert.Contains(t, src, `import "strings"`)
	assert.Contains(t, src, "//line a.md:6\nx := redis.Nil")
}
