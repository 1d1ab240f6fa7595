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

func (e *CompileError) Error() string {
	if len(e.Problems) == 1 {
		return e.Problems[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d problems:", len(e.Problems))
	for _, p := range e.Problems {
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
		return nil, &CompileError{Problems: probs}
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
			err = s.UnmarshalCedar(f.Data)
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
		list, err := cedar.NewPolicyListFromBytes(f.Name, f.Data)
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

	// Entities.
	entities := types.EntityMap{}
	origin := map[types.EntityUID]string{}
	for _, f := range entityFiles {
		var em types.EntityMap
		if err := decodeEntities(f.Data, &em); err != nil {
			add(locate(f, err))
			continue
		}
		for uid, e := range em {
			if prev, dup := origin[uid]; dup {
				add(Problem{File: f.Name, Message: fmt.Sprintf("entity %s is also defined in %s", uid, prev)})
				continue
			}
			origin[uid] = f.Name
			entities[uid] = e
			if validator != nil {
				if err := validator.Entity(e); err != nil {
					for _, e2 := range flatten(err) {
						add(Problem{File: f.Name, Message: fmt.Sprintf("entity %s: %s", uid, e2.Error())})
					}
				}
			}
		}
	}
	if len(probs) > 0 {
		return nil, &CompileError{Problems: probs}
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
	slices.SortFunc(actions, func(a, b types.EntityUID) int { return strings.Compare(a.String(), b.String()) })

	return &Snapshot{
		ID:       b.Hash(),
		Index:    NewIndex(policies),
		Entities: entities,
		Schema:   rs,
		Actions:  actions,
		Bundle:   Bundle{Files: files},
	}, nil
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

// decodeEntities decodes Cedar's entities JSON, rejecting trailing data.
func decodeEntities(data []byte, em *types.EntityMap) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("unexpected data after the entities array")
	}
	return json.Unmarshal(raw, em)
}

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
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		p.Line, p.Column = lineCol(f.Data, se.Offset)
	case errors.As(err, &te):
		p.Line, p.Column = lineCol(f.Data, te.Offset)
	default:
		// cedar-go parser errors carry "<name>:<line>:<col>" somewhere in
		// their text (the name may be "<input>"); lift the position out.
		if m := posRE.FindStringSubmatchIndex(p.Message); m != nil {
			fmt.Sscanf(p.Message[m[2]:m[3]], "%d", &p.Line)
			fmt.Sscanf(p.Message[m[4]:m[5]], "%d", &p.Column)
			p.Message = strings.TrimSpace(strings.TrimPrefix(p.Message[:m[0]]+p.Message[m[1]:], "parser error: "))
			p.Message = strings.Join(strings.Fields(strings.TrimSuffix(p.Message, ":")), " ")
		}
	}
	return p
}

var posRE = regexp.MustCompile(`(?:at )?\S*:(\d+):(\d+):?`)

func lineCol(data []byte, off int64) (int, int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	line, col := 1, 1
	for _, c := range data[:off] {
		if c == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}
