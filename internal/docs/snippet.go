package docs

import (
	"bufio"
	"bytes"
	"fmt"
	"go/doc/comment"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// A Snippet is one code block of the documentation.
type Snippet struct {
	File string `json:"file"` // relative to the repository root, with forward slashes
	Line int    `json:"line"` // of the block's first line of code
	Lang string `json:"lang"` // the fence's language: one of Tested or Untested
	Code string `json:"code"` // without the fence's indentation
}

// Where names a snippet in failure messages: "README.md:42".
func (s Snippet) Where() string { return fmt.Sprintf("%s:%d", s.File, s.Line) }

// Tested are the languages whose blocks are compiled (go: this package's tests) or
// executed: js and html in a page next to a hub (e2e/docs.test.mjs); vue (a Vue
// single-file component whose first line, <!-- Name.vue -->, names its file) and jsx (a
// React module, // Name.jsx) built into a Vite app against the packed npm package and
// driven in Chromium, and ts (TypeScript using the package's types, with a client c and a
// progress element bar given) type-checked by tsc against it (e2e/bindings.test.mjs).
var Tested = []string{"go", "js", "html", "vue", "jsx", "ts"}

// Untested are the languages of blocks that are not programs: shell commands, wire
// transcripts and output. Every other language, and a fence without one, is an error,
// so that no program escapes the tests by its label.
var Untested = []string{"sh", "text", "json"}

// Find returns every code block of the Markdown files and of the package comments of
// the Go packages (commands excepted) under root,
// skipping node_modules, testdata and hidden directories, in file order.
func Find(root string) ([]Snippet, error) {
	var out []Snippet
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "node_modules" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		var found []Snippet
		switch {
		case strings.HasSuffix(name, ".md"):
			found, err = markdownFile(path, rel)
		case strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go"):
			found, err = docComment(path, rel)
		}
		out = append(out, found...)
		return err
	})
	return out, err
}

func markdownFile(path, rel string) ([]Snippet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Markdown(rel, b)
}

// Markdown returns the fenced code blocks (``` or ~~~) of a Markdown document. A fence
// may be indented (inside a list item) or quoted (> ```): that prefix is removed from the
// block's lines. An indented code block (four spaces after a blank line, outside a list)
// is an error: it has no language, so it could not be tested.
func Markdown(file string, md []byte) ([]Snippet, error) {
	var (
		out    []Snippet
		open   bool
		fence  string // the opening fence's backquotes or tildes
		prefix string // the opening fence's indentation or quote markers
		cur    Snippet
		code   strings.Builder
		blank  = true // the previous line was blank (or there was none)
		inList bool   // the last paragraph outside a fence was a list item
	)
	sc := bufio.NewScanner(bytes.NewReader(md))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if open {
			body := strings.TrimPrefix(line, prefix)
			if t := strings.TrimLeft(stripQuote(line), " \t"); strings.HasPrefix(t, fence) && strings.Trim(t, fence[:1]) == "" {
				cur.Code = code.String()
				out = append(out, cur)
				open, blank = false, false
				continue
			}
			code.WriteString(body)
			code.WriteByte('\n')
			continue
		}
		content := stripQuote(line)
		trimmed := strings.TrimLeft(content, " \t")
		if f := fenceOf(trimmed); f != "" {
			open, fence = true, f
			prefix = line[:len(line)-len(trimmed)]
			lang, _, _ := strings.Cut(strings.TrimSpace(strings.TrimPrefix(trimmed, f)), " ")
			cur = Snippet{File: file, Line: n + 1, Lang: lang}
			code.Reset()
			continue
		}
		switch {
		case trimmed == "":
			blank = true
			continue
		case trimmed == content: // a line at the margin: a new paragraph, list item or heading
			inList = isListItem(trimmed)
		case blank && !inList && (strings.HasPrefix(content, "    ") || strings.HasPrefix(content, "\t")):
			return nil, fmt.Errorf("%s:%d: an indented code block; use a fence with a language", file, n)
		}
		blank = false
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if open {
		return nil, fmt.Errorf("%s:%d: code block never closed", file, cur.Line-1)
	}
	return out, nil
}

// stripQuote removes a line's blockquote markers (> > ).
func stripQuote(line string) string {
	for {
		t := strings.TrimLeft(line, " ")
		if !strings.HasPrefix(t, ">") {
			return line
		}
		line = strings.TrimPrefix(t[1:], " ")
	}
}

// fenceOf returns the fence a line opens (three or more backquotes or tildes), or "".
func fenceOf(trimmed string) string {
	for _, c := range "`~" {
		n := len(trimmed) - len(strings.TrimLeft(trimmed, string(c)))
		if n >= 3 {
			return trimmed[:n]
		}
	}
	return ""
}

// isListItem reports whether a line starts a list item: "- ", "* ", "+ " or "1. ".
func isListItem(t string) bool {
	if strings.HasPrefix(t, "- ") || strings.HasPrefix(t, "* ") || strings.HasPrefix(t, "+ ") {
		return true
	}
	d := len(t) - len(strings.TrimLeft(t, "0123456789"))
	return d > 0 && (strings.HasPrefix(t[d:], ". ") || strings.HasPrefix(t[d:], ") "))
}

// docComment returns the code blocks of a Go file's package comment, as Go, unless the
// package is a command: a command's comment shows how to run it.
func docComment(path, rel string) ([]Snippet, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		return nil, err
	}
	if f.Doc == nil || f.Name.Name == "main" {
		return nil, nil
	}
	text := f.Doc.Text()
	var p comment.Parser
	d := p.Parse(text)
	line := fset.Position(f.Doc.Pos()).Line
	var out []Snippet
	for _, b := range d.Content {
		if c, ok := b.(*comment.Code); ok {
			// The block's line: where its first line appears in the comment.
			first, _, _ := strings.Cut(c.Text, "\n")
			at := line
			for i, l := range strings.Split(text, "\n") {
				if strings.TrimSpace(l) == strings.TrimSpace(first) {
					at = line + i
					break
				}
			}
			out = append(out, Snippet{File: rel, Line: at, Lang: "go", Code: c.Text})
		}
	}
	return out, nil
}

// CheckLang reports a snippet whose language is neither tested nor known not to be a
// program.
func CheckLang(s Snippet) error {
	if slices.Contains(Tested, s.Lang) || slices.Contains(Untested, s.Lang) {
		return nil
	}
	if s.Lang == "" {
		return fmt.Errorf("%s: a code block without a language; label it (%s, or %s)",
			s.Where(), strings.Join(Tested, ", "), strings.Join(Untested, ", "))
	}
	return fmt.Errorf("%s: code blocks in %q are not tested; use one of %s, or %s",
		s.Where(), s.Lang, strings.Join(Tested, ", "), strings.Join(Untested, ", "))
}

// IsProgram reports whether a Go snippet is a complete file (it has a package clause).
func IsProgram(code string) bool {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "", code, parser.PackageClauseOnly)
	return err == nil && f.Name != nil && f.Name.Name != ""
}
