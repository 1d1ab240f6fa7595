// Package policy owns Vigil's policy sets: it loads a policy directory or a
// pushed bundle (Cedar policies, an optional schema, entities), validates
// and compiles it into an immutable, indexed Snapshot, and keeps the active
// version with its history (Store) so that a new set is swapped in with one
// atomic store and a broken one never replaces a working one.
package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"strings"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
	"github.com/cedar-policy/cedar-go/x/exp/schema"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// File suffixes that make up a policy directory or bundle.
const (
	SuffixPolicy     = ".cedar"
	SuffixSchema     = ".cedarschema"
	SuffixSchemaJSON = ".cedarschema.json"
	SuffixEntities   = ".entities.json"
)

// Limits on what a bundle may contain. They protect the process from
// accidental or hostile inputs (a pushed bundle is untrusted).
const (
	MaxFiles     = 10_000
	MaxFileBytes = 16 << 20
	MaxTotal     = 64 << 20

	// MaxPolicyOperators bounds the operators, brackets and the keywords
	// if, in, has, like and is in one policy. cedar-go parses, checks and
	// evaluates expressions recursively, so a small file with a deeply
	// nested or very long expression could otherwise exhaust a goroutine's
	// stack, which kills the process instead of failing the bundle.
	MaxPolicyOperators = 4096
	// MaxSchemaNesting bounds how deeply brackets nest in a Cedar schema,
	// for the same reason.
	MaxSchemaNesting = 256
)

// File is one named source file of a bundle. Name is a slash-separated path
// relative to the bundle root.
type File struct {
	Name string
	Data []byte
}

// Bundle is the complete source of a policy set: policies, at most one
// schema and any number of entity files.
type Bundle struct {
	Files []File
}

// Kind classifies a file name by its suffix; "" means the file is not part
// of a policy set.
func Kind(name string) string {
	switch {
	case strings.HasSuffix(name, SuffixSchemaJSON):
		return "schema"
	case strings.HasSuffix(name, SuffixEntities):
		return "entities"
	case strings.HasSuffix(name, SuffixSchema):
		return "schema"
	case strings.HasSuffix(name, SuffixPolicy):
		return "policy"
	}
	return ""
}

// Hash returns the content hash that identifies a bundle: the same files
// with the same contents always give the same version ID.
func (b Bundle) Hash() string {
	files := slices.Clone(b.Files)
	slices.SortFunc(files, func(x, y File) int { return strings.Compare(x.Name, y.Name) })
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%d:%s\n%d:", len(f.Name), f.Name, len(f.Data))
		h.Write(f.Data)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Problem is one thing wrong with a bundle, located as precisely as the
// input allows.
type Problem struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Policy  string `json:"policy,omitempty"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
			if p.Column > 0 {
				fmt.Fprintf(&b, ":%d", p.Column)
			}
		}
		b.WriteString(": ")
	}
	if p.Policy != "" {
		fmt.Fprintf(&b, "policy %q: ", p.Policy)
	}
	b.WriteString(p.Message)
	return b.String()
}

// CompileError lists every problem found in a bundle.
type CompileError struct {
	Problems []Problem
}

// MaxProblems is how many problems a CompileError lists; the rest are
// summarised in a last one, so that a bundle with thousands of broken
// entities does not produce a megabyte of error text.
const MaxProblems = 100

func newCompileError(probs []Problem) *CompileError {
	if len(probs) > MaxProblems {
		more := len(probs) - MaxProblems
		probs = append(probs[:MaxProblems:MaxProblems], Problem{Message: fmt.Sprintf("%d more problems not shown", more)})
	}
	return &CompileError{Problems: probs}
}

func (e *CompileError) Error() string { return FormatProblems(e.Problems) }

// FormatProblems renders problems as one message: the problem itself when
// there is one, else a count followed by one indented line per problem.
func FormatProblems(probs []Problem) string {
	if len(probs) == 1 {
		return probs[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d problems:", len(probs))
	for _, p := range probs {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Snapshot is a compiled, validated and indexed policy set with its
// entities. It is immutable: every field is read-only after Compile.
type Snapshot struct {
	// ID is the bundle's content hash.
	ID string
	// Index holds the policies, indexed by scope.
	Index *Index
	// Entities is the entity store, including the action entities declared
	// in the schema.
	Entities types.EntityMap
	// Schema is nil when the bundle has none.
	Schema *resolved.Schema
	// Actions are the actions requests may name: those declared in the
	// schema or, without one, those named in policy scopes and entities.
	Actions []types.EntityUID
	// Bundle is the source the snapshot was compiled from.
	Bundle Bundle
}

// Compile parses, validates and indexes a bundle. It is a pure function of
// its input. On any problem it returns a *CompileError listing all of them.
func Compile(b Bundle) (*Snapshot, error) {
	var probs []Problem
	add := func(p Problem) { probs = append(probs, p) }

	files := slices.Clone(b.Files)
	slices.SortFunc(files, func(x, y File) int { return strings.Compare(x.Name, y.Name) })
	if len(files) > MaxFiles {
		return nil, &CompileError{Problems: []Problem{{Message: fmt.Sprintf("bundle has %d files; at most %d are allowed", len(files), MaxFiles)}}}
	}
	total := 0
	var policyFiles, schemaFiles, entityFiles []File
	for i, f := range files {
		if err := checkName(f.Name); err != nil {
			add(Problem{File: f.Name, Message: err.Error()})
			continue
		}
		if i > 0 && files[i-1].Name == f.Name {
			add(Problem{File: f.Name, Message: "file appears twice in the bundle"})
			continue
		}
		if len(f.Data) > MaxFileBytes {
			add(Problem{File: f.Name, Message: fmt.Sprintf("file is %d bytes; at most %d are allowed", len(f.Data), MaxFileBytes)})
			continue
		}
		total += len(f.Data)
		switch Kind(f.Name) {
		case "policy":
			policyFiles = append(policyFiles, f)
		case "schema":
			schemaFiles = append(schemaFiles, f)
		case "entities":
			entityFiles = append(entityFiles, f)
		default:
			add(Problem{File: f.Name, Message: fmt.Sprintf("unknown file kind; expected *%s, *%s, *%s or *%s", SuffixPolicy, SuffixSchema, SuffixSchemaJSON, SuffixEntities)})
		}
	}
	if total > MaxTotal {
		add(Problem{Message: fmt.Sprintf("bundle is %d bytes; at most %d are allowed", total, MaxTotal)})
	}
	if len(probs) > 0 {
		return nil, newCompileError(probs)
	}

	// Schema.
	var rs *resolved.Schema
	var validator *validate.Validator
	if len(schemaFiles) > 1 {
		names := make([]string, len(schemaFiles))
		for i, f := range schemaFiles {
			names[i] = f.Name
		}
		add(Problem{Message: "more than one schema file: " + strings.Join(names, ", ") + "; merge them into one"})
	} else if len(schemaFiles) == 1 {
		f := schemaFiles[0]
		var s schema.Schema
		s.SetFilename(f.Name)
		var err error
		if strings.HasSuffix(f.Name, SuffixSchemaJSON) {
			err = s.UnmarshalJSON(f.Data)
		} else {
			err = checkNesting(f, true)
			if err == nil {
				err = s.UnmarshalCedar(f.Data)
			}
		}
		if err != nil {
			add(locate(f, err))
		} else if rs, err = s.Resolve(); err != nil {
			add(Problem{File: f.Name, Message: "resolve schema: " + err.Error()})
		} else {
			validator = validate.New(rs)
		}
	}

	// Policies.
	policies := map[cedar.PolicyID]*cedar.Policy{}
	where := map[cedar.PolicyID]string{}
	for _, f := range policyFiles {
		err := checkNesting(f, false)
		var list cedar.PolicyList
		if err == nil {
			list, err = cedar.NewPolicyListFromBytes(f.Name, f.Data)
		}
		if err != nil {
			add(locate(f, err))
			continue
		}
		for _, p := range list {
			pos := p.Position()
			id := cedar.PolicyID(fmt.Sprintf("%s:%d:%d", f.Name, pos.Line, pos.Column))
			if v, ok := p.Annotations()["id"]; ok {
				id = cedar.PolicyID(v)
				if id == "" {
					add(Problem{File: f.Name, Line: pos.Line, Column: pos.Column, Message: `@id("") is empty; give the policy a name or remove the annotation`})
					continue
				}
			}
			loc := fmt.Sprintf("%s:%d:%d", f.Name, pos.Line, pos.Column)
			if prev, dup := where[id]; dup {
				add(Problem{File: f.Name, Line: pos.Line, Column: pos.Column, Policy: string(id), Message: "duplicate policy ID; also defined at " + prev})
				continue
			}
			where[id] = loc
			policies[id] = p
			if validator != nil {
				if err := validator.Policy(string(id), (*xast.Policy)(p.AST())); err != nil {
					for _, e := range flatten(err) {
						add(Problem{File: f.Name, Line: pos.Line, Column: pos.Column, Policy: string(id), Message: e.Error()})
					}
				}
			}
		}
	}

	// An empty set denies everything: more often a truncated or half-written
	// file than an intent, so it is refused (write an explicit forbid to
	// deny all).
	if len(policies) == 0 && len(probs) == 0 {
		add(Problem{Message: "the policy set has no policies; an empty set would deny every request (write `forbid(principal, action, resource);` if that is what you want)"})
	}

	// Entities.
	entities := types.EntityMap{}
	type place struct {
		file      string
		line, col int
	}
	origin := map[types.EntityUID]place{}
	for _, f := range entityFiles {
		list, err := decodeEntities(f.Data)
		if err != nil {
			add(locate(f, err))
			continue
		}
		lc := lineCounter{data: f.Data, line: 1, col: 1}
		for _, ea := range list {
			uid := ea.e.UID
			line, col := lc.at(ea.off)
			if prev, dup := origin[uid]; dup {
				add(Problem{File: f.Name, Line: line, Column: col, Message: fmt.Sprintf("entity %s is also defined at %s:%d:%d", uid, prev.file, prev.line, prev.col)})
				continue
			}
			origin[uid] = place{f.Name, line, col}
			entities[uid] = ea.e
			if validator != nil {
				if err := validator.Entity(ea.e); err != nil {
					for _, e2 := range flatten(err) {
						add(Problem{File: f.Name, Line: line, Column: col, Message: fmt.Sprintf("entity %s: %s", uid, e2.Error())})
					}
				}
			}
		}
	}
	if len(probs) > 0 {
		return nil, newCompileError(probs)
	}

	// Actions: from the schema, else from policies and entities.
	actionSet := map[types.EntityUID]struct{}{}
	if rs != nil {
		for uid, a := range rs.Actions {
			actionSet[uid] = struct{}{}
			if _, ok := entities[uid]; !ok {
				entities[uid] = a.Entity
			}
		}
	} else {
		for _, p := range policies {
			s := toScope(p.AST().Action)
			for _, u := range s.uids {
				actionSet[u] = struct{}{}
			}
		}
		for uid := range entities {
			if isActionType(uid.Type) {
				actionSet[uid] = struct{}{}
			}
		}
	}
	actions := make([]types.EntityUID, 0, len(actionSet))
	for u := range actionSet {
		actions = append(actions, u)
	}
	slices.SortFunc(actions, compareUID)

	return &Snapshot{
		ID:       b.Hash(),
		Index:    NewIndex(policies),
		Entities: entities,
		Schema:   rs,
		Actions:  actions,
		Bundle:   Bundle{Files: files},
	}, nil
}

func compareUID(a, b types.EntityUID) int {
	return strings.Compare(a.String(), b.String())
}

func isActionType(t types.EntityType) bool {
	s := string(t)
	return s == "Action" || strings.HasSuffix(s, "::Action")
}

func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("file name is empty")
	case strings.HasPrefix(name, "/") || strings.Contains(name, "\\"):
		return errors.New("file name must be a relative slash-separated path")
	case path.Clean(name) != name || name == "." || strings.HasPrefix(name, "../") || name == "..":
		return errors.New("file name must be a clean relative path inside the bundle")
	}
	return nil
}

// entityAt is an entity and the byte offset where it starts in its file.
type entityAt struct {
	e   types.Entity
	off int64
}

// decodeEntities decodes Cedar's entities JSON (an array of entities, or
// null) and remembers where each entity starts, so that problems with it
// can be located. Errors that carry a position are *json.SyntaxError or
// *offsetError with offsets into data.
func decodeEntities(data []byte) ([]entityAt, error) {
	const space = " \t\r\n"
	first := int64(len(data) - len(bytes.TrimLeft(data, space)))
	dec := json.NewDecoder(bytes.NewReader(data))
	// A json.Decoder reports syntax errors at offsets relative to the value
	// it was reading, and a truncated file as a bare EOF; decoding the whole
	// file again gives a *json.SyntaxError at the absolute offset.
	syntax := func(err error) error {
		if err2 := json.Unmarshal(data, new(json.RawMessage)); err2 != nil {
			return err2
		}
		return err
	}
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("file is empty; expected a JSON array of entities")
		}
		return nil, syntax(err)
	}
	var out []entityAt
	switch tok {
	case nil: // null: no entities, as cedar-go accepts
	case json.Delim('['):
		for dec.More() {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, syntax(err)
			}
			start := dec.InputOffset() - int64(len(raw))
			var e types.Entity
			if err := e.UnmarshalJSON(raw); err != nil {
				// cedar-go decodes with github.com/go-json-experiment/json,
				// whose errors hold an offset into raw.
				var se *jsonv2.SemanticError
				var sy *jsontext.SyntacticError
				off := start
				switch {
				case errors.As(err, &se):
					off += se.ByteOffset
				case errors.As(err, &sy):
					off += sy.ByteOffset
				}
				return nil, &offsetError{off: off, err: fmt.Errorf("entity %d: %w", len(out)+1, err)}
			}
			out = append(out, entityAt{e: e, off: start})
		}
		if _, err := dec.Token(); err != nil { // the closing ']'
			return nil, syntax(err)
		}
	default:
		return nil, &offsetError{off: first, err: errors.New("expected a JSON array of entities")}
	}
	end := dec.InputOffset()
	if rest := bytes.TrimLeft(data[end:], space); len(rest) > 0 {
		return nil, &offsetError{off: int64(len(data) - len(rest)), err: errors.New("unexpected data after the entities array")}
	}
	return out, nil
}

// lineCounter turns increasing byte offsets into lines and columns in
// time linear in the file size.
type lineCounter struct {
	data      []byte
	off       int64
	line, col int
}

func (c *lineCounter) at(off int64) (int, int) {
	off = min(off, int64(len(c.data)))
	for ; c.off < off; c.off++ {
		if c.data[c.off] == '\n' {
			c.line++
			c.col = 1
		} else {
			c.col++
		}
	}
	return c.line, c.col
}

// checkNesting enforces MaxPolicyOperators on Cedar policy source and
// MaxSchemaNesting on Cedar schema source before either reaches cedar-go's
// recursive parsers. It skips string literals and comments; the count is an
// upper bound on the depth of the parsed expression.
func checkNesting(f File, schema bool) error {
	data := f.Data
	depth, ops, start := 0, 0, -1 // start: offset of the current policy
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case c == '"':
			for i++; i < len(data) && data[i] != '"'; i++ {
				if data[i] == '\\' {
					i++
				}
			}
			continue
		case c == '/' && i+1 < len(data) && data[i+1] == '/':
			for i < len(data) && data[i] != '\n' {
				i++
			}
			continue
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			continue
		}
		if schema {
			switch c {
			case '{', '<', '[', '(':
				if depth++; depth > MaxSchemaNesting {
					return &offsetError{off: int64(i), err: fmt.Errorf("schema nests deeper than %d levels", MaxSchemaNesting)}
				}
			case '}', '>', ']', ')':
				depth = max(depth-1, 0)
			}
			continue
		}
		if start < 0 {
			start = i
		}
		switch {
		case c == ';':
			ops, start = 0, -1
			continue
		case strings.IndexByte("([{!-.+*<>=&|", c) >= 0:
			// Two-character operators count once.
			if i+1 < len(data) && (data[i+1] == '=' || (c == '&' || c == '|') && data[i+1] == c) {
				i++
			}
			ops++
		case c == '_' || c|0x20 >= 'a' && c|0x20 <= 'z':
			j := i + 1
			for j < len(data) && (data[j] == '_' || data[j] >= '0' && data[j] <= '9' || data[j]|0x20 >= 'a' && data[j]|0x20 <= 'z') {
				j++
			}
			switch string(data[i:j]) {
			case "if", "in", "has", "like", "is":
				ops++
			}
			i = j - 1
		}
		if ops > MaxPolicyOperators {
			return &offsetError{off: int64(start), err: fmt.Errorf("policy is too complex: more than %d operators, brackets and keywords; split it into smaller policies or use sets", MaxPolicyOperators)}
		}
	}
	return nil
}

// offsetError is an error at a byte offset of a file.
type offsetError struct {
	off int64
	err error
}

func (e *offsetError) Error() string { return e.err.Error() }
func (e *offsetError) Unwrap() error { return e.err }

// flatten splits joined errors so each becomes its own problem.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// locate turns a parse error into a Problem with a line and column when the
// error carries a position or a byte offset.
func locate(f File, err error) Problem {
	p := Problem{File: f.Name, Message: err.Error()}
	var oe *offsetError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &oe):
		p.Line, p.Column = lineCol(f.Data, oe.off)
	case errors.As(err, &se):
		// Offset counts the bytes read including the offending one.
		p.Line, p.Column = lineCol(f.Data, se.Offset-1)
	default:
		// cedar-go parser errors carry "<name>:<line>:<col>" somewhere in
		// their text (the name may be "<input>"); lift the position out.
		// The file name may contain spaces, which the pattern cannot
		// skip, so a message that starts with it is handled first.
		if rest, ok := strings.CutPrefix(p.Message, f.Name+":"); ok {
			if m := leadPosRE.FindStringSubmatch(rest); m != nil {
				fmt.Sscanf(m[1], "%d", &p.Line)
				fmt.Sscanf(m[2], "%d", &p.Column)
				p.Message = strings.Join(strings.Fields(strings.TrimPrefix(strings.TrimSpace(rest[len(m[0]):]), "parser error: ")), " ")
				return p
			}
		}
		if m := posRE.FindStringSubmatchIndex(p.Message); m != nil {
			fmt.Sscanf(p.Message[m[2]:m[3]], "%d", &p.Line)
			fmt.Sscanf(p.Message[m[4]:m[5]], "%d", &p.Column)
			p.Message = strings.TrimSpace(strings.TrimPrefix(p.Message[:m[0]]+p.Message[m[1]:], "parser error: "))
			p.Message = strings.Join(strings.Fields(strings.TrimSuffix(p.Message, ":")), " ")
		}
	}
	return p
}

var (
	posRE     = regexp.MustCompile(`(?:at )?\S*:(\d+):(\d+):?`)
	leadPosRE = regexp.MustCompile(`^(\d+):(\d+):?`)
)

func lineCol(data []byte, off int64) (int, int) {
	c := lineCounter{data: data, line: 1, col: 1}
	return c.at(max(off, 0))
}
