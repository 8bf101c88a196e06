package docs

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Packages are the import paths of the package names a fragment may use without an
// import line: wspub's own packages, which the prose around a fragment names, and the
// standard library's. Another module's package must be imported by the fragment itself
// (import "github.com/redis/go-redis/v9"), or a reader could not tell which module, or
// which major version of it, the fragment means.
var Packages = map[string]string{
	"wspub":       "github.com/wspub/wspub",
	"redisbroker": "github.com/wspub/wspub/redisbroker",
	"natsbroker":  "github.com/wspub/wspub/natsbroker",
	"prommetrics": "github.com/wspub/wspub/prommetrics",
	"context":     "context",
	"errors":      "errors",
	"fmt":         "fmt",
	"http":        "net/http",
	"json":        "encoding/json",
	"log":         "log",
	"os":          "os",
	"signal":      "os/signal",
	"slog":        "log/slog",
	"strings":     "strings",
	"syscall":     "syscall",
	"time":        "time",
}

// Given are the variables the prose takes for granted: a fragment that uses one of
// these names without declaring it gets it as a parameter of this type.
var Given = map[string]string{
	"ctx":    "context.Context",
	"mux":    "*http.ServeMux",
	"hub":    "*wspub.Hub",
	"msg":    "wspub.Message",
	"p":      "any",
	"userID": "string",
	"connID": "string",
	"url":    "string",
	"logger": "*slog.Logger",
	"verify": "func(token string) (Claims, error)",
}

// Prelude declares what the types of Given need; it is added once to the package of
// the wrapped fragments.
const Prelude = `package snippets

import "time"

// Claims stands for what a token verifier returns.
type Claims struct {
	Subject   string
	ExpiresAt time.Time
}
`

// qualifier finds the package names in a type expression such as *slog.Logger.
var qualifier = regexp.MustCompile(`\b([a-z]+)\.`)

var importLine = regexp.MustCompile(`^import\s+("[^"]+")\s*(//.*)?$`)

// Wrap returns a Go file of package snippets in which the fragment s is the body of
// function fn, or the elements of a wspub.Options literal when it is a list of fields
// (Authenticate: ...,). Import lines at the top of the fragment become the file's
// imports; packages of Packages and variables of Given that the fragment uses are added;
// every variable the fragment declares at its top level is used once after it, since a
// fragment shows a step, not a whole program. //line directives make the compiler's
// messages name the fragment's own file and line.
func Wrap(s Snippet, fn string) (string, error) {
	lines := strings.Split(strings.TrimRight(s.Code, "\n"), "\n")
	imports := map[string]bool{}
	skip, group := 0, false
hoist:
	for _, l := range lines {
		t := strings.TrimSpace(l)
		var quoted string
		switch {
		case t == "" && !group:
		case t == "import (" && !group:
			group = true
		case t == ")" && group:
			group = false
		case group:
			quoted, _, _ = strings.Cut(t, " ")
		default:
			m := importLine.FindStringSubmatch(t)
			if m == nil {
				break hoist
			}
			quoted = m[1]
		}
		if quoted != "" {
			path, err := strconv.Unquote(quoted)
			if err != nil {
				return "", fmt.Errorf("%s: import %s: %v", s.Where(), quoted, err)
			}
			imports[path] = true
		}
		skip++
	}
	body := strings.Join(lines[skip:], "\n")
	fset := token.NewFileSet()
	var (
		fd   *ast.FuncDecl
		head string
		tail string
	)
	for _, form := range []struct{ head, tail string }{
		{"", ""},
		{"_ = wspub.Options{\n", "\n}"},
	} {
		src := "package snippets\nfunc f() error {\n" + form.head + body + form.tail + "\nreturn nil\n}\n"
		f, err := parser.ParseFile(fset, "", src, 0)
		if err == nil {
			fd, head, tail = f.Decls[0].(*ast.FuncDecl), form.head, form.tail
			break
		}
	}
	if fd == nil {
		_, err := parser.ParseFile(fset, s.Where(), "package snippets\nfunc f() error {\n"+body+"\n}\n", 0)
		return "", fmt.Errorf("%s: neither statements nor Options fields: %v", s.Where(), err)
	}

	declared := topLevelNames(fd.Body)
	used := map[string]bool{}
	selected := map[string]bool{}
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.Ident:
			used[n.Name] = true
		case *ast.SelectorExpr:
			if x, ok := n.X.(*ast.Ident); ok {
				selected[x.Name] = true
			}
		}
		return true
	})
	var params []string
	for _, name := range slices.Sorted(maps.Keys(Given)) {
		if used[name] && !declared[name] {
			typ := Given[name]
			params = append(params, name+" "+typ)
			for _, m := range qualifier.FindAllStringSubmatch(typ, -1) {
				imports[Packages[m[1]]] = true
			}
		}
	}
	for name, path := range Packages {
		if selected[name] && !declared[name] && !(used[name] && Given[name] != "") {
			imports[path] = true
		}
	}
	if head != "" {
		imports[Packages["wspub"]] = true
	}

	var b strings.Builder
	b.WriteString("package snippets\n\n")
	for _, path := range slices.Sorted(maps.Keys(imports)) {
		fmt.Fprintf(&b, "import %q\n", path)
	}
	fmt.Fprintf(&b, "\nfunc %s(%s) error {\n", fn, strings.Join(params, ", "))
	b.WriteString(head)
	fmt.Fprintf(&b, "//line %s:%d\n", s.File, s.Line+skip)
	b.WriteString(body)
	b.WriteString(tail)
	b.WriteString("\n")
	for _, name := range slices.Sorted(maps.Keys(declared)) {
		fmt.Fprintf(&b, "\t_ = %s\n", name)
	}
	b.WriteString("\treturn nil\n}\n")
	return b.String(), nil
}

// topLevelNames returns the variables a function body declares outside any nested
// block.
func topLevelNames(body *ast.BlockStmt) map[string]bool {
	names := map[string]bool{}
	for _, st := range body.List {
		switch st := st.(type) {
		case *ast.AssignStmt:
			if st.Tok == token.DEFINE {
				for _, e := range st.Lhs {
					if id, ok := e.(*ast.Ident); ok && id.Name != "_" {
						names[id.Name] = true
					}
				}
			}
		case *ast.DeclStmt:
			if gd, ok := st.Decl.(*ast.GenDecl); ok && gd.Tok == token.VAR {
				for _, spec := range gd.Specs {
					for _, id := range spec.(*ast.ValueSpec).Names {
						if id.Name != "_" {
							names[id.Name] = true
						}
					}
				}
			}
		}
	}
	return names
}

// Program returns a complete Go file with a //line directive, so that the compiler's
// messages name the snippet's own file and line.
func Program(s Snippet) (string, error) {
	if !IsProgram(s.Code) {
		return "", errors.New(s.Where() + ": not a complete Go file")
	}
	return fmt.Sprintf("//line %s:%d\n%s", s.File, s.Line, s.Code), nil
}
