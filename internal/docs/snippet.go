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
	Lang string `json:"lang"` // the fence's language: go, js, html, sh, text, json
	Code string `json:"code"` // without the fence's indentation
}

// Where names a snippet in failure messages: "README.md:42".
func (s Snippet) Where() string { return fmt.Sprintf("%s:%d", s.File, s.Line) }

// Tested are the languages whose blocks are compiled (go) or executed (js, html).
var Tested = []string{"go", "js", "html"}

// Untested are the languages of blocks that are not programs: shell commands, wire
// transcripts and output. Every other language, and a fence without one, is an error,
// so that no program escapes the tests by its label.
var Untested = []string{"sh", "text", "json"}

// Find returns every code block of the Markdown files and doc.go files under root,
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
		case name == "doc.go":
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

// Markdown returns the fenced code blocks (```) of a Markdown document. A fence may be
// indented (inside a list item); that indentation is removed from the block's lines.
func Markdown(file string, md []byte) ([]Snippet, error) {
	var (
		out    []Snippet
		open   bool
		indent string
		cur    Snippet
		code   strings.Builder
	)
	sc := bufio.NewScanner(bytes.NewReader(md))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimLeft(line, " \t")
		if strings.HasPrefix(trimmed, "```") {
			if open {
				cur.Code = code.String()
				out = append(out, cur)
				open = false
				continue
			}
			open, indent = true, line[:len(line)-len(trimmed)]
			lang, _, _ := strings.Cut(strings.TrimPrefix(trimmed, "```"), " ")
			cur = Snippet{File: file, Line: n + 1, Lang: lang}
			code.Reset()
			continue
		}
		if open {
			code.WriteString(strings.TrimPrefix(line, indent))
			code.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if open {
		return nil, fmt.Errorf("%s:%d: code block never closed", file, cur.Line-1)
	}
	return out, nil
}

// docComment returns the code blocks of a doc.go file's package comment, as Go.
func docComment(path, rel string) ([]Snippet, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		return nil, err
	}
	if f.Doc == nil {
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
