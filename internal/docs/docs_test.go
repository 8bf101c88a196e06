package docs

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// repoRoot is the repository's root, two levels above this module.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	return root
}

func snippets(t *testing.T) []Snippet {
	t.Helper()
	all, err := Find(repoRoot(t))
	require.NoError(t, err)
	require.NotEmpty(t, all)
	return all
}

func TestEveryCodeBlockIsLabelledWithATestedOrInertLanguage(t *testing.T) {
	for _, s := range snippets(t) {
		assert.NoError(t, CheckLang(s))
	}
}

func TestTheDocsThatMustBeTestedHaveTheirSnippetsFound(t *testing.T) {
	count := map[string]int{}
	for _, s := range snippets(t) {
		if slices.Contains(Tested, s.Lang) {
			count[s.File+" "+s.Lang]++
		}
	}
	for _, want := range []string{
		"README.md go", "README.md html", "README.md js", "doc.go go",
		"PROTOCOL.md js", "client/README.md go", "client/README.md html",
		"client/README.md vue", "client/README.md jsx",
	} {
		assert.Positive(t, count[want], "no %s snippet found; the extractor is broken", want)
	}
}

func TestJSONBlocksAreJSON(t *testing.T) {
	for _, s := range snippets(t) {
		if s.Lang == "json" {
			assert.True(t, json.Valid([]byte(s.Code)), "%s: not JSON", s.Where())
		}
	}
}

// TestGoSnippetsCompile builds every Go code block of the documentation in a module of
// its own that requires what this one does. Compiler messages name the doc's own file
// and line (README.md:140: undefined: ...).
func TestGoSnippetsCompile(t *testing.T) {
	dir := snippetModule(t)
	pkg := filepath.Join(dir, "snippets")
	require.NoError(t, os.MkdirAll(pkg, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(pkg, "prelude.go"), []byte(Prelude), 0o644))
	n := 0
	for i, s := range snippets(t) {
		if s.Lang != "go" {
			continue
		}
		n++
		name := fmt.Sprintf("s%03d_%s", i, strings.NewReplacer("/", "_", ".", "_").Replace(s.File))
		if IsProgram(s.Code) {
			src, err := Program(s)
			require.NoError(t, err)
			d := filepath.Join(dir, "programs", name)
			require.NoError(t, os.MkdirAll(d, 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(d, "main.go"), []byte(src), 0o644))
			continue
		}
		src, err := Wrap(s, name)
		if !assert.NoError(t, err) {
			continue
		}
		require.NoError(t, os.WriteFile(filepath.Join(pkg, name+".go"), []byte(src), 0o644))
	}
	require.Positive(t, n)
	cmd := exec.Command("go", "build", "-o", os.DevNull, "./...")
	cmd.Dir = dir
	// -mod=readonly: the snippets build with exactly this module's requirements; one
	// that needs another module fails instead of adding it.
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -mod=readonly"))
	out, err := cmd.CombinedOutput()
	assert.NoError(t, err, "the documentation's Go snippets do not compile:\n%s", out)
}

var relReplace = regexp.MustCompile(`(?m)^(.*=>\s+)(\.\.?/\S*|\.\.?)$`)

// snippetModule returns a temporary directory holding a go.mod that requires what this
// module's does (relative replace directives made absolute) and this module's go.sum.
func snippetModule(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	mod, err := os.ReadFile("go.mod")
	require.NoError(t, err)
	here, err := filepath.Abs(".")
	require.NoError(t, err)
	src := relReplace.ReplaceAllStringFunc(string(mod), func(m string) string {
		sub := relReplace.FindStringSubmatch(m)
		return sub[1] + filepath.Join(here, sub[2])
	})
	src = regexp.MustCompile(`(?m)^module .*$`).ReplaceAllString(src, "module docsnippets")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte(src), 0o644))
	sum, err := os.ReadFile("go.sum")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644))
	return dir
}

// The README's pages are meant to be pasted into a Go raw string, as the Quickstart's
// page is: a backquote would end the string.
func TestBrowserPagesPasteIntoAGoRawString(t *testing.T) {
	for _, s := range snippets(t) {
		if s.Lang == "html" {
			assert.NotContains(t, s.Code, "`", "%s: a backquote cannot be pasted into a Go raw string", s.Where())
		}
	}
}
