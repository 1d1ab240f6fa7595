package authzen

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// node is one decoded JSON value. Numbers keep their literal text so that
// the conversion to Cedar can be exact. Objects keep their members in
// document order (names are unique: duplicates are rejected while
// decoding); arrays keep their elements as members without names.
//
// A tree's member slices live in its parser's slab and are only valid
// until the parser is reused; nothing may keep a node beyond the request.
type node struct {
	kind kind
	b    bool
	s    string // string value, or the literal text of a number
	kids []member
}

type member struct {
	name string
	val  node
}

type kind uint8

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

func (k kind) String() string {
	switch k {
	case kindNull:
		return "null"
	case kindBool:
		return "boolean"
	case kindNumber:
		return "number"
	case kindString:
		return "string"
	case kindArray:
		return "array"
	case kindObject:
		return "object"
	}
	return "unknown"
}

// get returns the member named name of an object node, or nil. A member
// whose value is null counts as absent (AuthZEN: omit nulls).
func (n *node) get(name string) *node {
	if n.kind != kindObject {
		return nil
	}
	for i := range n.kids {
		if n.kids[i].name == name {
			if n.kids[i].val.kind == kindNull {
				return nil
			}
			return &n.kids[i].val
		}
	}
	return nil
}

// syntaxError is a request body that is not acceptable JSON. It always
// concerns the whole request.
type syntaxError struct{ msg string }

func (e *syntaxError) Error() string { return e.msg }

// parser decodes request bodies into node trees. It is reused across
// requests (pooled by the Handler): the slab that holds the trees' member
// slices is recycled, so a steady stream of requests allocates only the
// strings it decodes.
type parser struct {
	dec      jsontext.Decoder
	maxDepth int
	stack    []member // members of the objects and arrays being decoded
	slab     []member // finished member slices
	empty    bytes.Buffer
}

// maxSlabKeep bounds the slab a pooled parser keeps between requests.
const maxSlabKeep = 4096

// release drops references into the last tree so that pooled parsers do not
// keep request data alive, and reports whether the parser is worth pooling.
func (p *parser) release() bool {
	clear(p.slab)
	p.slab = p.slab[:0]
	p.dec.Reset(&p.empty)
	return cap(p.slab) <= maxSlabKeep && cap(p.stack) <= maxSlabKeep
}

// decode decodes one JSON value from buf with the given nesting limit.
// Duplicate object member names, invalid UTF-8 and trailing data are
// rejected (I-JSON, RFC 7493). The tree is valid until the next decode.
func (p *parser) decode(buf *bytes.Buffer, maxDepth int) (node, error) {
	p.dec.Reset(buf)
	p.maxDepth = maxDepth
	p.stack = p.stack[:0]
	p.slab = p.slab[:0]
	n, err := p.value(0)
	if err != nil {
		return node{}, p.explain(err)
	}
	if _, err := p.dec.ReadToken(); err != io.EOF {
		return node{}, &syntaxError{"request body has data after the JSON value; send exactly one JSON object"}
	}
	return n, nil
}

var errTooDeep = errors.New("too deep")

// keep moves the members decoded since start from the stack to the slab.
func (p *parser) keep(start int) []member {
	src := p.stack[start:]
	if len(src) == 0 {
		p.stack = p.stack[:start]
		return nil
	}
	if cap(p.slab)-len(p.slab) < len(src) {
		// Earlier trees' slices stay valid in the old array.
		p.slab = make([]member, 0, max(32, 2*cap(p.slab), len(src)))
	}
	n := len(p.slab)
	p.slab = append(p.slab, src...)
	clear(src)
	p.stack = p.stack[:start]
	return p.slab[n : n+len(src) : n+len(src)]
}

func (p *parser) value(depth int) (node, error) {
	switch p.dec.PeekKind() {
	case '{':
		if depth+1 > p.maxDepth {
			return node{}, errTooDeep
		}
		if _, err := p.dec.ReadToken(); err != nil {
			return node{}, err
		}
		start := len(p.stack)
		for p.dec.PeekKind() == '"' {
			raw, err := p.dec.ReadValue()
			if err != nil {
				return node{}, err
			}
			name := internName(raw)
			v, err := p.value(depth + 1)
			if err != nil {
				return node{}, err
			}
			p.stack = append(p.stack, member{name: name, val: v})
		}
		if _, err := p.dec.ReadToken(); err != nil {
			return node{}, err
		}
		return node{kind: kindObject, kids: p.keep(start)}, nil
	case '[':
		if depth+1 > p.maxDepth {
			return node{}, errTooDeep
		}
		if _, err := p.dec.ReadToken(); err != nil {
			return node{}, err
		}
		start := len(p.stack)
		for k := p.dec.PeekKind(); k != ']' && k != 0; k = p.dec.PeekKind() {
			v, err := p.value(depth + 1)
			if err != nil {
				return node{}, err
			}
			p.stack = append(p.stack, member{val: v})
		}
		if _, err := p.dec.ReadToken(); err != nil {
			return node{}, err
		}
		return node{kind: kindArray, kids: p.keep(start)}, nil
	}
	// A scalar: the raw bytes alias the decoder's buffer and are only
	// valid until the next read, so they are copied out here.
	raw, err := p.dec.ReadValue()
	if err != nil {
		return node{}, err
	}
	switch raw.Kind() {
	case 'n':
		return node{kind: kindNull}, nil
	case 't':
		return node{kind: kindBool, b: true}, nil
	case 'f':
		return node{kind: kindBool}, nil
	case '0':
		return node{kind: kindNumber, s: string(raw)}, nil
	case '"':
		return node{kind: kindString, s: unquote(raw)}, nil
	}
	return node{}, fmt.Errorf("unexpected JSON value %q", raw)
}

// unquote returns the value of a valid JSON string literal.
func unquote(raw jsontext.Value) string {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1])
	}
	b, err := jsontext.AppendUnquote(nil, raw)
	if err != nil { // cannot happen: the decoder validated the literal
		return ""
	}
	return string(b)
}

// internName returns an object member name, without allocating for the
// names AuthZEN defines.
func internName(raw jsontext.Value) string {
	if len(raw) > 2 && bytes.IndexByte(raw, '\\') < 0 {
		switch string(raw[1 : len(raw)-1]) {
		case "subject":
			return "subject"
		case "action":
			return "action"
		case "resource":
			return "resource"
		case "context":
			return "context"
		case "type":
			return "type"
		case "id":
			return "id"
		case "name":
			return "name"
		case "properties":
			return "properties"
		case "evaluations":
			return "evaluations"
		case "options":
			return "options"
		case "evaluations_semantic":
			return "evaluations_semantic"
		case "page":
			return "page"
		case "token":
			return "token"
		case "limit":
			return "limit"
		}
	}
	return unquote(raw)
}

// explain turns a decoding failure into a message for the client.
func (p *parser) explain(err error) error {
	at := p.dec.StackPointer()
	where := ""
	if at != "" {
		where = " at " + pointerPath(string(at))
	}
	switch {
	case err == errTooDeep:
		return &syntaxError{fmt.Sprintf("request body nests JSON deeper than %d levels%s; flatten the values", p.maxDepth, where)}
	case err == io.EOF && p.dec.InputOffset() == 0:
		return &syntaxError{"request body is empty; send a JSON object"}
	case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
		return &syntaxError{"request body is truncated JSON" + where + "; send a complete JSON object"}
	}
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		msg := se.Err.Error()
		if se.JSONPointer != "" {
			where = " at " + pointerPath(string(se.JSONPointer))
		}
		return &syntaxError{fmt.Sprintf("request body is not valid JSON: %s%s (byte offset %d)", msg, where, se.ByteOffset)}
	}
	return &syntaxError{"request body is not valid JSON: " + strings.TrimPrefix(err.Error(), "jsontext: ")}
}

// pointerPath renders an RFC 6901 JSON pointer in the dotted form used in
// every error message ("evaluations[1].subject.id").
func pointerPath(ptr string) string {
	var b strings.Builder
	for tok := range strings.SplitSeq(strings.TrimPrefix(ptr, "/"), "/") {
		if ptr == "" {
			break
		}
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		if _, err := strconv.Atoi(tok); err == nil && tok != "" && (tok == "0" || tok[0] != '0') {
			// Ambiguous with an object member named like a number; the
			// bracket form reads naturally for the arrays AuthZEN uses.
			b.WriteString("[" + tok + "]")
			continue
		}
		appendKey(&b, tok)
	}
	if b.Len() == 0 {
		return "the top level"
	}
	return strings.TrimPrefix(b.String(), ".")
}

// fieldError is a problem with one field of the request. The path is
// built while the error travels up the converters (each level prepends its
// member name or index), so that nothing is spent on paths on success.
type fieldError struct {
	path string // ".subject.id", "[2].resource", "" for the value itself
	msg  string
}

func (e *fieldError) Error() string {
	p := strings.TrimPrefix(e.path, ".")
	if p == "" {
		return e.msg
	}
	return p + ": " + e.msg
}

// fieldErr returns an error about the value itself; callers prefix where
// it is with in and at.
func fieldErr(format string, args ...any) error {
	return &fieldError{msg: fmt.Sprintf(format, args...)}
}

// in prefixes an error's path with an object member name.
func in(err error, key string) error {
	if fe, ok := err.(*fieldError); ok {
		var b strings.Builder
		appendKey(&b, key)
		fe.path = b.String() + fe.path
	}
	return err
}

// at prefixes an error's path with an array index.
func at(err error, i int) error {
	if fe, ok := err.(*fieldError); ok {
		fe.path = "[" + strconv.Itoa(i) + "]" + fe.path
	}
	return err
}

func appendKey(b *strings.Builder, key string) {
	if isSimpleKey(key) {
		b.WriteByte('.')
		b.WriteString(key)
		return
	}
	b.WriteByte('[')
	b.WriteString(strconv.Quote(key))
	b.WriteByte(']')
}

func isSimpleKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '_' && c != '-' && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
