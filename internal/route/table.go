// Package route maps every HTTP request to the Cedar action and resource
// Vigil decides it against. It owns the route configuration, the import of
// routes from an OpenAPI 3 document, and a compiled, immutable route Table.
//
// Matching works on the raw (escaped) request path. A path that is
// malformed or that servers could interpret differently (encoded slashes,
// dot segments, empty segments, backslashes, control characters, double
// encoding, ...) is rejected with a BadRequestError rather than normalised;
// the remaining segments are percent-decoded exactly once and matched
// case-sensitively against a segment tree. Templates are literal segments,
// "{name}" (one segment) and "{name...}" (the rest); a literal beats a
// parameter, which beats a rest parameter, compared from the left. Requests
// that match no route fail with ErrNoRoute and are denied. docs/routes.md documents
// every rule.
//
// A Table is safe for concurrent use. To change routes, compile a new Table
// and swap it in.
package route

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/cedar-policy/cedar-go/types"
)

// Match is the result of matching a request against a Table.
type Match struct {
	// Route is the route configuration that matched. It belongs to the
	// Table and must not be modified.
	Route *Route
	// Action is the Cedar action, e.g. Action::"GET /todos/{id}".
	Action types.EntityUID
	// Resource is the Cedar resource, e.g. Todo::"42".
	Resource types.EntityUID
	// Params holds the percent-decoded path parameters by name; nil when
	// the route has none. A "{name}" value is one non-empty segment and
	// never contains '/'; a "{name...}" value is the rest of the path
	// (segments joined by '/', possibly empty or ending in '/').
	Params map[string]string
	// Template is the route's path template, e.g. "/todos/{id}".
	Template string
}

// RouteInfo describes one compiled (route, method) pair.
type RouteInfo struct {
	Method       string // an HTTP method, or "*"
	Template     string
	Action       types.EntityUID
	ResourceType types.EntityType
	Anonymous    bool
	Upstream     string
	// Origin says where the route was defined, e.g. "routes[2]" or
	// `openapi.yaml: paths["/todos/{id}"].get`.
	Origin string
}

// Table is a compiled, immutable route map.
type Table struct {
	root    *node
	entries []*entry
	// overridden describes imported routes dropped in favour of a
	// configured route with the same method and path shape.
	overridden []string
}

// node is one position in the segment tree. Children are tried in order of
// specificity: literal, then parameter, then rest.
type node struct {
	lits  map[string]*node // by percent-decoded literal segment
	param *node
	rest  *leaf
	end   *leaf // routes whose template ends at this node
}

// leaf holds the routes of one path shape, at most one per method plus at
// most one "*" route.
type leaf struct {
	methods []*entry
	any     *entry
}

type param struct {
	name string
	seg  int
	rest bool
}

// resTemplate builds the resource UID of a match: a literal id, one
// parameter, or an interpolation of parts.
type resTemplate struct {
	typ   types.EntityType
	lit   types.String
	param string
	parts []idPart
}

type entry struct {
	route    *Route
	method   string
	explicit bool
	action   types.EntityUID
	res      resTemplate
	params   []param
}

func (e *entry) describe() string {
	return fmt.Sprintf("%s (%s %s)", e.route.origin, e.method, e.route.Path)
}

// maxErrors bounds how many route errors one Compile reports.
const maxErrors = 20

// Compile builds a Table from cfg.Routes and routes imported from an OpenAPI
// document (see ImportOpenAPI; pass nil for none). It performs no I/O.
// Configured routes replace imported routes with the same method and path
// shape; any other two routes that would match the same requests are a
// conflict and an error naming both.
func Compile(cfg Config, imported []Route) (*Table, error) {
	cfg.SetDefaults()
	actionType, err := types.NewEntityType(cfg.ActionType)
	if err != nil {
		return nil, fmt.Errorf("action_type: %q is not a Cedar entity type (identifiers separated by \"::\")", cfg.ActionType)
	}
	b := builder{t: &Table{root: &node{}}, actionType: actionType}
	var errs []error
	add := func(r Route, explicit bool) {
		if err := b.add(r, explicit); err != nil {
			errs = append(errs, err)
		}
	}
	for i, r := range cfg.Routes {
		r.origin = fmt.Sprintf("routes[%d]", i)
		add(r, true)
	}
	for i, r := range imported {
		if r.origin == "" {
			r.origin = fmt.Sprintf("imported route %d", i)
		}
		add(r, false)
	}
	if len(errs) > maxErrors {
		errs = append(errs[:maxErrors], fmt.Errorf("... and %d more errors", len(errs)-maxErrors))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return b.t, nil
}

type builder struct {
	t          *Table
	actionType types.EntityType
}

func (b *builder) add(r Route, explicit bool) error {
	methods, err := routeMethods(r.Method)
	if err != nil {
		return fmt.Errorf("%s.method: %w", r.origin, err)
	}
	segs, err := parseTemplate(r.Path)
	if err != nil {
		return fmt.Errorf("%s.path: %q: %w", r.origin, r.Path, err)
	}
	var params []param
	names := make(map[string]bool)
	for i, s := range segs {
		if s.kind != segLiteral {
			params = append(params, param{name: s.name, seg: i, rest: s.kind == segRest})
			names[s.name] = true
		}
	}
	res, err := resourceOf(r, segs, names)
	if err != nil {
		return fmt.Errorf("%s.%w", r.origin, err)
	}
	if r.Action != "" && (strings.TrimSpace(r.Action) != r.Action || !utf8.ValidString(r.Action)) {
		return fmt.Errorf("%s.action: %q has surrounding spaces or is not valid UTF-8", r.origin, r.Action)
	}

	rc := new(Route)
	*rc = r
	rc.Method = slices.Clone(r.Method)
	lf := b.leafFor(segs)
	for _, m := range methods {
		action := r.Action
		if action == "" {
			action = m + " " + r.Path
		}
		e := &entry{
			route:    rc,
			method:   m,
			explicit: explicit,
			action:   types.EntityUID{Type: b.actionType, ID: types.String(action)},
			res:      res,
			params:   params,
		}
		if prev := lf.get(m); prev != nil {
			if prev.explicit && !explicit {
				b.t.overridden = append(b.t.overridden, e.describe()+" replaced by "+prev.describe())
				continue
			}
			return fmt.Errorf("%s conflicts with %s: both match the same requests; remove one or make its path different",
				e.describe(), prev.describe())
		}
		lf.set(e)
		b.t.entries = append(b.t.entries, e)
	}
	return nil
}

// routeMethods validates a route's methods.
func routeMethods(ms Methods) ([]string, error) {
	if len(ms) == 0 {
		return nil, errors.New(`required: a method ("GET"), a list ([GET, HEAD]) or "*"`)
	}
	seen := make(map[string]bool, len(ms))
	for _, m := range ms {
		if m == "*" {
			if len(ms) > 1 {
				return nil, errors.New(`"*" cannot be combined with other methods`)
			}
			continue
		}
		if err := checkMethod(m); err != nil {
			return nil, fmt.Errorf("%q: methods are uppercase ASCII letters, '-' or '_'", m)
		}
		if seen[m] {
			return nil, fmt.Errorf("%q listed twice", m)
		}
		seen[m] = true
	}
	return ms, nil
}

// resourceOf applies the Resource defaults and compiles the id template.
// Errors start with the key below the route ("resource.type: ...").
func resourceOf(r Route, segs []tmplSeg, params map[string]bool) (resTemplate, error) {
	if r.Resource.Type == "" {
		if r.Resource.ID != "" {
			return resTemplate{}, errors.New("resource.type: required when resource.id is set")
		}
		return resTemplate{typ: DefaultResourceType, lit: types.String(r.Path)}, nil
	}
	typ, err := types.NewEntityType(r.Resource.Type)
	if err != nil {
		return resTemplate{}, fmt.Errorf("resource.type: %q is not a Cedar entity type (identifiers separated by \"::\")", r.Resource.Type)
	}
	if r.Resource.ID == "" {
		if last := segs[len(segs)-1]; last.kind != segLiteral {
			return resTemplate{typ: typ, param: last.name}, nil
		}
		return resTemplate{typ: typ, lit: types.String(r.Path)}, nil
	}
	parts, err := parseIDTemplate(r.Resource.ID, params)
	if err != nil {
		return resTemplate{}, fmt.Errorf("resource.id: %q: %w", r.Resource.ID, err)
	}
	switch {
	case len(parts) == 1 && parts[0].param != "":
		return resTemplate{typ: typ, param: parts[0].param}, nil
	case len(parts) == 1:
		return resTemplate{typ: typ, lit: types.String(parts[0].lit)}, nil
	}
	return resTemplate{typ: typ, parts: parts}, nil
}

func (b *builder) leafFor(segs []tmplSeg) *leaf {
	n := b.t.root
	for _, s := range segs {
		switch s.kind {
		case segLiteral:
			if n.lits == nil {
				n.lits = make(map[string]*node)
			}
			c := n.lits[s.lit]
			if c == nil {
				c = &node{}
				n.lits[s.lit] = c
			}
			n = c
		case segParam:
			if n.param == nil {
				n.param = &node{}
			}
			n = n.param
		case segRest:
			if n.rest == nil {
				n.rest = &leaf{}
			}
			return n.rest
		}
	}
	if n.end == nil {
		n.end = &leaf{}
	}
	return n.end
}

func (l *leaf) get(method string) *entry {
	if method == "*" {
		return l.any
	}
	for _, e := range l.methods {
		if e.method == method {
			return e
		}
	}
	return nil
}

func (l *leaf) set(e *entry) {
	if e.method == "*" {
		l.any = e
		return
	}
	l.methods = append(l.methods, e)
}

// lookup picks the route for a request method: the exact method, then for
// HEAD the GET route, then the "*" route.
func (l *leaf) lookup(method string) *entry {
	if e := l.get(method); e != nil {
		return e
	}
	if method == "HEAD" {
		if e := l.get("GET"); e != nil {
			return e
		}
	}
	return l.any
}

// Match maps a request to its route. method is the request method as sent;
// rawPath is the escaped path without query or fragment (for net/http:
// r.URL.EscapedPath()). Errors match ErrBadRequest (reject with 400) or
// ErrNoRoute (deny). A nil Table matches nothing.
func (t *Table) Match(method, rawPath string) (Match, error) {
	if err := checkMethod(method); err != nil {
		return Match{}, err
	}
	var sp splitPath
	if err := sp.parse(rawPath); err != nil {
		return Match{}, err
	}
	if t == nil || t.root == nil {
		return Match{}, &NoRouteError{Method: method}
	}
	if e := t.root.find(&sp, 0, method); e != nil {
		return e.bind(&sp), nil
	}
	return Match{}, t.noRoute(&sp, method)
}

// find walks the tree depth-first in order of specificity and returns the
// first route that accepts the method. Every tree node is visited at most
// once per call, so the cost is bounded by the size of the tree.
func (n *node) find(sp *splitPath, i int, method string) *entry {
	if i == sp.n {
		if n.end == nil {
			return nil
		}
		return n.end.lookup(method)
	}
	if n.lits != nil {
		if c := n.child(sp, i); c != nil {
			if e := c.find(sp, i+1, method); e != nil {
				return e
			}
		}
	}
	if n.param != nil && int(sp.end[i]) > sp.start(i) {
		if e := n.param.find(sp, i+1, method); e != nil {
			return e
		}
	}
	if n.rest != nil {
		return n.rest.lookup(method)
	}
	return nil
}

func (n *node) child(sp *splitPath, i int) *node {
	s := sp.seg(i)
	if !sp.encoded(i) {
		return n.lits[s]
	}
	var buf [128]byte
	return n.lits[string(appendUnescaped(buf[:0], s))]
}

// noRoute builds the error for an unmatched request, listing the methods
// that routes accept for the path.
func (t *Table) noRoute(sp *splitPath, method string) error {
	var allowed []string
	t.root.collect(sp, 0, &allowed)
	if len(allowed) == 0 {
		return &NoRouteError{Method: method}
	}
	if slices.Contains(allowed, "GET") {
		allowed = append(allowed, "HEAD")
	}
	slices.Sort(allowed)
	return &NoRouteError{Method: method, Allowed: slices.Compact(allowed)}
}

func (n *node) collect(sp *splitPath, i int, out *[]string) {
	if i == sp.n {
		if n.end != nil {
			n.end.methodsTo(out)
		}
		return
	}
	if n.lits != nil {
		if c := n.child(sp, i); c != nil {
			c.collect(sp, i+1, out)
		}
	}
	if n.param != nil && int(sp.end[i]) > sp.start(i) {
		n.param.collect(sp, i+1, out)
	}
	if n.rest != nil {
		n.rest.methodsTo(out)
	}
}

func (l *leaf) methodsTo(out *[]string) {
	for _, e := range l.methods {
		*out = append(*out, e.method)
	}
}

// bind builds the Match for a request that reached e.
func (e *entry) bind(sp *splitPath) Match {
	m := Match{
		Route:    e.route,
		Action:   e.action,
		Resource: types.EntityUID{Type: e.res.typ, ID: e.res.lit},
		Template: e.route.Path,
	}
	if len(e.params) == 0 {
		return m
	}
	m.Params = make(map[string]string, len(e.params))
	for _, p := range e.params {
		if p.rest {
			m.Params[p.name] = sp.rest(p.seg)
		} else {
			m.Params[p.name] = sp.value(p.seg)
		}
	}
	switch {
	case e.res.param != "":
		m.Resource.ID = types.String(m.Params[e.res.param])
	case e.res.parts != nil:
		var sb strings.Builder
		for _, p := range e.res.parts {
			if p.param != "" {
				sb.WriteString(m.Params[p.param])
			} else {
				sb.WriteString(p.lit)
			}
		}
		m.Resource.ID = types.String(sb.String())
	}
	return m
}

// Routes lists the compiled routes, one per (route, method), in definition
// order: configured routes first, then imported ones.
func (t *Table) Routes() []RouteInfo {
	if t == nil {
		return nil
	}
	out := make([]RouteInfo, len(t.entries))
	for i, e := range t.entries {
		out[i] = RouteInfo{
			Method:       e.method,
			Template:     e.route.Path,
			Action:       e.action,
			ResourceType: e.res.typ,
			Anonymous:    e.route.Anonymous,
			Upstream:     e.route.Upstream,
			Origin:       e.route.origin,
		}
	}
	return out
}

// Actions returns the distinct actions of all routes, sorted by id. Useful
// to check them against a Cedar schema or to answer AuthZEN action search.
func (t *Table) Actions() []types.EntityUID {
	if t == nil {
		return nil
	}
	out := make([]types.EntityUID, 0, len(t.entries))
	for _, e := range t.entries {
		out = append(out, e.action)
	}
	slices.SortFunc(out, func(a, b types.EntityUID) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return slices.Compact(out)
}
