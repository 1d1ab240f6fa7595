package policytest

import (
	"cmp"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/vigil-authz/vigil/internal/policy"
)

// Limits on test files; they are read from disk or a pushed bundle and are
// treated as untrusted.
const (
	MaxFileBytes   = 4 << 20
	MaxCases       = 10_000
	MaxEntities    = 10_000 // per case, and for the file-level list
	maxFlowNesting = 256
)

// Suite is one parsed test file.
type Suite struct {
	// File is the name the suite was parsed under.
	File string
	// Name is the file's name: key, or else the file's base name.
	Name  string
	Cases []Case
}

// Case is one test case: a request and what the policies must decide.
type Case struct {
	Name string
	// Line is where the case starts in its file.
	Line    int
	Request Request
	// Allow is the expected decision.
	Allow bool
	// Reasons, when CheckReasons is set, must equal the IDs of the
	// determining policies (in any order). An empty list with CheckReasons
	// demands that no policy determined the decision (a default deny).
	Reasons      []string
	CheckReasons bool
	// Errors, when not nil, says whether evaluation errors are expected.
	Errors *bool
	// Skip, when not empty, skips the case and says why.
	Skip string
	// Validate checks the request against the schema, if there is one,
	// before deciding. On by default; `validate: false` turns it off for
	// cases that deliberately send what the schema does not allow.
	Validate bool
}

// LoadError lists every problem found in test files, located by file,
// line and column.
type LoadError struct {
	Problems []policy.Problem
}

func (e *LoadError) Error() string { return policy.FormatProblems(e.Problems) }

// The YAML documents. Fields whose absence matters or whose values are
// converted by hand are `any`; strict decoding still rejects unknown keys.
type suiteDoc struct {
	Name string `yaml:"name"`
	// Anchors is a place to define YAML anchors (&name) that cases refer
	// to (*name); its content is otherwise ignored.
	Anchors  any         `yaml:"anchors"`
	Entities []entityDoc `yaml:"entities"`
	Cases    []caseDoc   `yaml:"cases"`
}

type requestDoc struct {
	Principal        any         `yaml:"principal"`
	PrincipalAttrs   any         `yaml:"principal_attrs"`
	PrincipalParents any         `yaml:"principal_parents"`
	Action           any         `yaml:"action"`
	Resource         any         `yaml:"resource"`
	ResourceAttrs    any         `yaml:"resource_attrs"`
	ResourceParents  any         `yaml:"resource_parents"`
	Context          any         `yaml:"context"`
	Entities         []entityDoc `yaml:"entities"`
}

type caseDoc struct {
	Name     string     `yaml:"name"`
	Request  requestDoc `yaml:",inline"`
	Expect   string     `yaml:"expect"`
	Reasons  *[]string  `yaml:"reasons"`
	Errors   *bool      `yaml:"errors"`
	Skip     string     `yaml:"skip"`
	Validate *bool      `yaml:"validate"`
}

type entityDoc struct {
	UID     any `yaml:"uid"`
	Attrs   any `yaml:"attrs"`
	Parents any `yaml:"parents"`
	Tags    any `yaml:"tags"`
}

// source converts one YAML document and collects located problems.
type source struct {
	file string
	root ast.Node
	conv *converter
	errs []policy.Problem
}

// add records a problem. at is the path (keys and indexes from the
// document root) of the node err is about; a conversion error's own path
// leads further in where the YAML allows. prefix names the case.
func (s *source) add(at []any, prefix string, err error) {
	full := append(append([]any{}, at...), splitPath(pathOf(err))...)
	line, col := locate(s.root, full)
	s.errs = append(s.errs, policy.Problem{File: s.file, Line: line, Column: col, Message: prefix + err.Error()})
}

// under moves a conversion error below key: the error at "x" of field
// "context" becomes the error at "context.x".
func under(key string, err error) error {
	return &pathErr{path: concatPath(key, pathOf(err)), msg: msgOf(err)}
}

// Parse parses a test file. It is a pure function of its input; the
// returned error is a *LoadError listing every problem found, located by
// line and column.
func Parse(file string, data []byte) (*Suite, error) {
	fail := func(line, col int, msg string) error {
		return &LoadError{Problems: []policy.Problem{{File: file, Line: line, Column: col, Message: msg}}}
	}
	var doc suiteDoc
	body, err := decodeYAML(file, data, MaxFileBytes, "file is empty; want a mapping with cases: [...]", &doc)
	if err != nil {
		return nil, err
	}
	src := &source{file: file, root: body, conv: newConverter()}
	suite := &Suite{File: file, Name: doc.Name}
	if suite.Name == "" {
		suite.Name = filepath.Base(file)
	}
	if len(doc.Cases) == 0 {
		line, col := locate(body, []any{"cases"})
		return nil, fail(line, col, "no test cases; add a cases: list")
	}
	if len(doc.Cases) > MaxCases {
		return nil, fail(0, 0, fmt.Sprintf("%d cases; at most %d are allowed per file", len(doc.Cases), MaxCases))
	}
	shared := src.entities(nil, "", "entities", doc.Entities)

	seen := map[string]int{}
	for i, cd := range doc.Cases {
		at := []any{"cases", i}
		line, _ := locate(body, at)
		c := Case{Name: cd.Name, Line: line, Skip: cd.Skip, Validate: true, Errors: cd.Errors}
		prefix := fmt.Sprintf("case %q: ", c.Name)
		if c.Name == "" {
			prefix = fmt.Sprintf("case %d: ", i+1)
			src.add(at, prefix, errors.New("case has no name; add name: ..."))
		} else if prev, dup := seen[c.Name]; dup {
			src.add(at, "", &pathErr{path: "name", msg: fmt.Sprintf("duplicate case name %q; also used at line %d", c.Name, prev)})
		} else {
			seen[c.Name] = line
		}
		switch cd.Expect {
		case "allow":
			c.Allow = true
		case "deny":
		case "":
			src.add(at, prefix, errors.New("expect is missing; write expect: allow or expect: deny"))
		default:
			src.add(at, prefix, &pathErr{path: "expect", msg: fmt.Sprintf("%q; want allow or deny", cd.Expect)})
		}
		if cd.Reasons != nil {
			c.CheckReasons = true
			c.Reasons = append([]string{}, (*cd.Reasons)...)
		}
		if cd.Validate != nil {
			c.Validate = *cd.Validate
		}
		req, ok := src.request(at, prefix, cd.Request)
		if ok {
			req.Entities = mergeEntities(shared, req.Entities)
		}
		c.Request = req
		suite.Cases = append(suite.Cases, c)
	}
	if len(src.errs) > 0 {
		slices.SortStableFunc(src.errs, func(a, b policy.Problem) int {
			return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
		})
		return nil, &LoadError{Problems: src.errs}
	}
	return suite, nil
}

// request converts the request fields of a case or an eval document at
// path at.
func (s *source) request(at []any, prefix string, d requestDoc) (Request, bool) {
	n := len(s.errs)
	report := func(key string, err error) { s.add(at, prefix, under(key, err)) }
	var r Request
	var err error
	if r.Principal, err = uid("", d.Principal); err != nil {
		report("principal", err)
	}
	if r.Action, err = actionUID("", d.Action); err != nil {
		report("action", err)
	}
	if r.Resource, err = uid("", d.Resource); err != nil {
		report("resource", err)
	}
	if d.Context != nil {
		if r.Context, err = s.conv.record("", d.Context); err != nil {
			report("context", err)
		}
	}
	r.PrincipalOverlay = s.overlay(report, "principal", d.PrincipalAttrs, d.PrincipalParents)
	r.ResourceOverlay = s.overlay(report, "resource", d.ResourceAttrs, d.ResourceParents)
	r.Entities = s.entities(at, prefix, "entities", d.Entities)
	return r, len(s.errs) == n
}

func (s *source) overlay(report func(string, error), who string, attrs, parents any) *Overlay {
	if attrs == nil && parents == nil {
		return nil
	}
	ov := &Overlay{}
	if attrs != nil {
		r, err := s.conv.record("", attrs)
		if err != nil {
			report(who+"_attrs", err)
		}
		ov.Attrs = r
	}
	if parents != nil {
		ps, err := uidList("", parents)
		if err != nil {
			report(who+"_parents", err)
		}
		ov.Parents, ov.ReplaceParents = ps, true
	}
	return ov
}

// entities converts a list of entities in Cedar's entities JSON shape
// found under key at path at.
func (s *source) entities(at []any, prefix, key string, docs []entityDoc) types.EntityMap {
	if len(docs) == 0 {
		return nil
	}
	if len(docs) > MaxEntities {
		s.add(at, prefix, &pathErr{path: key, msg: fmt.Sprintf("%d entities; at most %d are allowed", len(docs), MaxEntities)})
		return nil
	}
	out := make(types.EntityMap, len(docs))
	for j, ed := range docs {
		item := joinIndex(key, j)
		e, field, err := s.entity(ed)
		if err != nil {
			s.add(at, prefix, under(item+"."+field, err))
			continue
		}
		if _, dup := out[e.UID]; dup {
			s.add(at, prefix, &pathErr{path: item + ".uid", msg: fmt.Sprintf("entity %s is listed twice", e.UID)})
			continue
		}
		out[e.UID] = e
	}
	return out
}

// entity converts one entity; key names the field an error belongs to.
func (s *source) entity(d entityDoc) (types.Entity, string, error) {
	u, err := uid("", d.UID)
	if err != nil {
		return types.Entity{}, "uid", err
	}
	e := types.Entity{UID: u}
	if d.Attrs != nil {
		if e.Attributes, err = s.conv.record("", d.Attrs); err != nil {
			return types.Entity{}, "attrs", err
		}
	}
	if d.Tags != nil {
		if e.Tags, err = s.conv.record("", d.Tags); err != nil {
			return types.Entity{}, "tags", err
		}
	}
	if d.Parents != nil {
		ps, err := uidList("", d.Parents)
		if err != nil {
			return types.Entity{}, "parents", err
		}
		e.Parents = types.NewEntityUIDSet(ps...)
	}
	return e, "", nil
}

// mergeEntities lays top over base; neither is modified.
func mergeEntities(base, top types.EntityMap) types.EntityMap {
	if len(base) == 0 {
		return top
	}
	out := make(types.EntityMap, len(base)+len(top))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range top {
		out[k] = v
	}
	return out
}

func msgOf(err error) string {
	var pe *pathErr
	if errors.As(err, &pe) {
		return pe.msg
	}
	return err.Error()
}

// splitPath turns a converter path such as a.b[2]."x y" back into steps.
func splitPath(p string) []any {
	var out []any
	for p != "" {
		switch {
		case p[0] == '.':
			p = p[1:]
		case p[0] == '[':
			end := strings.IndexByte(p, ']')
			if end < 0 {
				return out
			}
			var i int
			if _, err := fmt.Sscanf(p[1:end], "%d", &i); err != nil {
				return out
			}
			out = append(out, i)
			p = p[end+1:]
		case p[0] == '"':
			// Quoted key: find the closing quote, honouring escapes.
			end := 1
			for end < len(p) && p[end] != '"' {
				if p[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(p) {
				return out
			}
			var k string
			if _, err := fmt.Sscanf(p[:end+1], "%q", &k); err != nil {
				return out
			}
			out = append(out, k)
			p = p[end+1:]
		default:
			end := strings.IndexAny(p, ".[")
			if end < 0 {
				end = len(p)
			}
			out = append(out, p[:end])
			p = p[end:]
		}
	}
	return out
}

// locate finds the line and column of the node at path, or of the deepest
// node on the way to it (YAML aliases and merge keys are not followed).
func locate(root ast.Node, path []any) (int, int) {
	n := root
	best := n
	for _, step := range path {
		n = unwrap(n)
		if n == nil {
			break
		}
		var next ast.Node
		switch st := step.(type) {
		case string:
			next = mapValue(n, st)
		case int:
			if seq, ok := n.(*ast.SequenceNode); ok && st >= 0 && st < len(seq.Values) {
				next = seq.Values[st]
			}
		}
		if next == nil {
			break
		}
		n, best = next, next
	}
	return nodePos(best)
}

// nodePos is where a node starts: for a block mapping its first key (the
// mapping's own token is a colon), for a flow mapping its brace.
func nodePos(n ast.Node) (int, int) {
	if n != nil {
		if u := unwrap(n); u != nil {
			switch m := u.(type) {
			case *ast.MappingNode:
				if m.IsFlowStyle && m.Start != nil {
					break // the opening brace
				}
				if len(m.Values) > 0 && m.Values[0].Key != nil {
					u = m.Values[0].Key
				}
			case *ast.MappingValueNode:
				if m.Key != nil {
					u = m.Key
				}
			}
			n = u
		}
	}
	if n == nil || n.GetToken() == nil || n.GetToken().Position == nil {
		return 0, 0
	}
	pos := n.GetToken().Position
	return pos.Line, pos.Column
}

func unwrap(n ast.Node) ast.Node {
	for {
		switch x := n.(type) {
		case *ast.AnchorNode:
			n = x.Value
		case *ast.TagNode:
			n = x.Value
		case *ast.DocumentNode:
			n = x.Body
		default:
			return n
		}
	}
}

func mapValue(n ast.Node, key string) ast.Node {
	var values []*ast.MappingValueNode
	switch m := n.(type) {
	case *ast.MappingNode:
		values = m.Values
	case *ast.MappingValueNode:
		values = []*ast.MappingValueNode{m}
	default:
		return nil
	}
	for _, mv := range values {
		if mv.Key != nil && mv.Key.GetToken() != nil && mv.Key.GetToken().Value == key {
			return mv.Value
		}
	}
	return nil
}

// decodeYAML parses data, which must hold one YAML document of at most max
// bytes, and strictly decodes it into v. It returns the document's root
// node for locating problems.
func decodeYAML(file string, data []byte, max int, emptyMsg string, v any) (body ast.Node, err error) {
	fail := func(line, col int, msg string) error {
		return &LoadError{Problems: []policy.Problem{{File: file, Line: line, Column: col, Message: msg}}}
	}
	if len(data) > max {
		return nil, fail(0, 0, fmt.Sprintf("%d bytes; at most %d are allowed", len(data), max))
	}
	if line, ok := flowNestingOK(data); !ok {
		return nil, fail(line, 0, fmt.Sprintf("brackets nest more than %d levels deep", maxFlowNesting))
	}
	// The YAML library is large and sees hostile input; a panic in it must
	// not take the process down. (Only the library runs under this
	// recover, so fuzzing still finds panics in this package.)
	defer func() {
		if r := recover(); r != nil {
			body, err = nil, fail(0, 0, fmt.Sprintf("YAML parser failed: %v", r))
		}
	}()
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, yamlProblem(file, err)
	}
	for _, d := range f.Docs {
		if d == nil || d.Body == nil {
			continue
		}
		if body != nil {
			line, col := nodePos(d.Body)
			return nil, fail(line, col, "more than one YAML document; a file holds exactly one")
		}
		body = d.Body
	}
	if body == nil {
		return nil, fail(0, 0, emptyMsg)
	}
	if err := yaml.NodeToValue(body, v, yaml.Strict()); err != nil {
		return nil, yamlProblem(file, err)
	}
	return body, nil
}

// yamlProblem turns a go-yaml error into a located problem.
func yamlProblem(file string, err error) error {
	p := policy.Problem{File: file, Message: err.Error()}
	var ye yaml.Error
	if errors.As(err, &ye) {
		p.Message = ye.GetMessage()
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			p.Line, p.Column = tk.Position.Line, tk.Position.Column
		}
	}
	if strings.HasPrefix(p.Message, "unknown field") {
		p.Message += "; see docs/policies.md for the test file format"
	}
	return &LoadError{Problems: []policy.Problem{p}}
}

// flowNestingOK rejects inputs whose brackets nest deeper than
// maxFlowNesting: the YAML parser recurses once per level. Brackets inside
// strings are counted too, which only errs on the side of rejecting absurd
// input.
func flowNestingOK(data []byte) (int, bool) {
	depth, line := 0, 1
	for _, c := range data {
		switch c {
		case '\n':
			line++
		case '[', '{':
			depth++
			if depth > maxFlowNesting {
				return line, false
			}
		case ']', '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return 0, true
}
