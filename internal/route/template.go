package route

import (
	"errors"
	"fmt"
	"strings"
)

type segKind uint8

const (
	segLiteral segKind = iota
	segParam           // {name}: exactly one non-empty segment
	segRest            // {name...}: the remaining segments, at least one
)

// tmplSeg is one segment of a parsed path template.
type tmplSeg struct {
	kind segKind
	lit  string // decoded literal for segLiteral
	name string // parameter name for segParam and segRest
}

// parseTemplate parses a route path template. Literal segments obey the same
// rules as request paths (so every template can match something) and are
// compared after percent-decoding; parameters span whole segments.
func parseTemplate(t string) ([]tmplSeg, error) {
	if t == "" || t[0] != '/' {
		return nil, errors.New(`must start with "/"`)
	}
	if len(t) > MaxPathBytes {
		return nil, fmt.Errorf("longer than %d bytes", MaxPathBytes)
	}
	raw := strings.Split(t[1:], "/")
	if len(raw) > MaxSegments {
		return nil, fmt.Errorf("more than %d segments", MaxSegments)
	}
	segs := make([]tmplSeg, 0, len(raw))
	seen := make(map[string]bool)
	for i, s := range raw {
		last := i == len(raw)-1
		if len(s) >= 2 && s[0] == '{' && s[len(s)-1] == '}' && !strings.ContainsAny(s[1:len(s)-1], "{}") {
			name, rest := strings.CutSuffix(s[1:len(s)-1], "...")
			if err := checkParamName(name); err != nil {
				return nil, fmt.Errorf("segment %d %q: %w", i, s, err)
			}
			if seen[name] {
				return nil, fmt.Errorf("parameter {%s} appears twice", name)
			}
			seen[name] = true
			kind := segParam
			if rest {
				if !last {
					return nil, fmt.Errorf("rest parameter {%s...} must be the last segment", name)
				}
				kind = segRest
			}
			segs = append(segs, tmplSeg{kind: kind, name: name})
			continue
		}
		if strings.ContainsAny(s, "{}") {
			return nil, fmt.Errorf("segment %d %q: a parameter must be a whole segment, like {name} or {name...}", i, s)
		}
		if _, code, c := checkSegment(s, last); code != "" {
			return nil, errors.New(segmentError(code, i, c).Message)
		}
		segs = append(segs, tmplSeg{kind: segLiteral, lit: unescape(s)})
	}
	return segs, nil
}

// checkParamName accepts ASCII letters, digits, '_' and '-'.
func checkParamName(name string) error {
	if name == "" {
		return errors.New("empty parameter name")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("parameter name %q may contain only ASCII letters, digits, '_' and '-'", name)
		}
	}
	return nil
}

// idPart is a piece of a resource id template: a literal or a parameter.
type idPart struct {
	lit   string
	param string
}

// parseIDTemplate splits a resource id like "{org}:{id}" into parts and
// checks that every referenced parameter exists in the path template.
func parseIDTemplate(id string, params map[string]bool) ([]idPart, error) {
	var parts []idPart
	for id != "" {
		open := strings.IndexByte(id, '{')
		if close := strings.IndexByte(id, '}'); close >= 0 && (open < 0 || close < open) {
			return nil, errors.New(`unmatched "}"`)
		}
		if open < 0 {
			parts = append(parts, idPart{lit: id})
			break
		}
		if open > 0 {
			parts = append(parts, idPart{lit: id[:open]})
		}
		end := strings.IndexByte(id[open:], '}')
		if end < 0 {
			return nil, errors.New(`unmatched "{"`)
		}
		name := id[open+1 : open+end]
		if strings.HasSuffix(name, "...") {
			return nil, fmt.Errorf("write {%s} to reference a rest parameter", strings.TrimSuffix(name, "..."))
		}
		if !params[name] {
			return nil, fmt.Errorf("references {%s}, which is not a parameter of the route path", name)
		}
		parts = append(parts, idPart{param: name})
		id = id[open+end+1:]
	}
	return parts, nil
}
