package policy

import (
	"iter"
	"slices"
	"sort"
	"sync/atomic"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/ast"
)

// Index narrows a policy set to the policies whose principal, action and
// resource scopes can match a request. cedar-go's Authorize evaluates every
// policy it is given; a policy whose scope does not match evaluates to false
// without error (the scope is checked before any condition), so handing
// Authorize only the matching ones yields the same decision, reasons and
// errors at a cost that grows with the matching policies, not the set.
//
// Select checks every scope of the policies it returns exactly as Cedar
// would, against the same entities. Those scopes are therefore known to hold,
// and a Selection hands Authorize each policy with its scope removed (the
// same effect, conditions, annotations and position): Cedar then evaluates
// only the conditions instead of walking the entity hierarchy again for
// every `in`.
//
// An Index is immutable once built and safe for concurrent use.
type Index struct {
	entries []indexEntry // in a stable order (policy ID)
	dims    [3]dimIndex  // principal, action, resource
}

type indexEntry struct {
	id     cedar.PolicyID
	policy *cedar.Policy
	// unscoped is policy without its scope, for requests whose scope
	// Select has checked (policy itself when its scope is empty). It is
	// compiled when a request first selects the policy, so that policies
	// never selected, and the indexes of old versions kept for rollback,
	// cost no second copy.
	unscoped    atomic.Pointer[cedar.Policy]
	scopes      [3]scope
	annotations map[string]string // nil when the policy has none
}

// unscopedPolicy returns e.unscoped, compiling it on first use. Concurrent
// first uses may each compile it; they produce equal policies and one wins.
func (e *indexEntry) unscopedPolicy() *cedar.Policy {
	if p := e.unscoped.Load(); p != nil {
		return p
	}
	u := *e.policy.AST()
	u.Principal, u.Action, u.Resource = ast.ScopeTypeAll{}, ast.ScopeTypeAll{}, ast.ScopeTypeAll{}
	p := cedar.NewPolicyFromAST(&u)
	if e.unscoped.CompareAndSwap(nil, p) {
		return p
	}
	return e.unscoped.Load()
}

const (
	dimPrincipal = iota
	dimAction
	dimResource
)

// scope is a policy's constraint on one request element, reduced to the
// forms Cedar's scope grammar allows.
type scope struct {
	kind   scopeKind
	typ    types.EntityType  // for is / is-in
	uids   []types.EntityUID // for ==, in, is-in (one) and in [..] (many)
	uidSet map[types.EntityUID]struct{}
}

type scopeKind uint8

const (
	scopeAll scopeKind = iota
	scopeEq
	scopeIn
	scopeIs
	scopeIsIn
	scopeInSet
)

// dimIndex holds, for one request element, the policies by the key that
// must be present among the element and its ancestors for the scope to match.
type dimIndex struct {
	all    []int32
	byUID  map[types.EntityUID][]int32
	byType map[types.EntityType][]int32
}

// NewIndex builds an index over the given policies. Policies are kept in
// ascending ID order so that iteration order is deterministic.
func NewIndex(policies map[cedar.PolicyID]*cedar.Policy) *Index {
	ids := make([]cedar.PolicyID, 0, len(policies))
	for id := range policies {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	ix := &Index{entries: make([]indexEntry, len(ids))}
	for d := range ix.dims {
		ix.dims[d] = dimIndex{byUID: map[types.EntityUID][]int32{}, byType: map[types.EntityType][]int32{}}
	}
	for i, id := range ids {
		p := policies[id]
		a := p.AST()
		e := &ix.entries[i]
		e.id, e.policy = id, p
		if len(a.Annotations) > 0 {
			e.annotations = make(map[string]string, len(a.Annotations))
			for _, an := range a.Annotations {
				e.annotations[string(an.Key)] = string(an.Value)
			}
		}
		e.scopes[dimPrincipal] = toScope(a.Principal)
		e.scopes[dimAction] = toScope(a.Action)
		e.scopes[dimResource] = toScope(a.Resource)
		if e.scopes[dimPrincipal].kind == scopeAll && e.scopes[dimAction].kind == scopeAll && e.scopes[dimResource].kind == scopeAll {
			e.unscoped.Store(p)
		}
		for d, s := range e.scopes {
			ix.dims[d].add(int32(i), s)
		}
	}
	return ix
}

func toScope(n ast.IsScopeNode) scope {
	switch s := n.(type) {
	case ast.ScopeTypeEq:
		return scope{kind: scopeEq, uids: []types.EntityUID{s.Entity}}
	case ast.ScopeTypeIn:
		return scope{kind: scopeIn, uids: []types.EntityUID{s.Entity}}
	case ast.ScopeTypeIs:
		return scope{kind: scopeIs, typ: s.Type}
	case ast.ScopeTypeIsIn:
		return scope{kind: scopeIsIn, typ: s.Type, uids: []types.EntityUID{s.Entity}}
	case ast.ScopeTypeInSet:
		set := make(map[types.EntityUID]struct{}, len(s.Entities))
		for _, u := range s.Entities {
			set[u] = struct{}{}
		}
		return scope{kind: scopeInSet, uids: slices.Clone(s.Entities), uidSet: set}
	default: // ast.ScopeTypeAll and anything unknown: never exclude
		return scope{kind: scopeAll}
	}
}

func (d *dimIndex) add(i int32, s scope) {
	switch s.kind {
	case scopeEq, scopeIn, scopeIsIn, scopeInSet:
		for _, u := range s.uids {
			l := d.byUID[u]
			if len(l) == 0 || l[len(l)-1] != i {
				d.byUID[u] = append(l, i)
			}
		}
	case scopeIs:
		d.byType[s.typ] = append(d.byType[s.typ], i)
	default:
		d.all = append(d.all, i)
	}
}

// Len reports the number of indexed policies. A nil Index is empty.
func (ix *Index) Len() int {
	if ix == nil {
		return 0
	}
	return len(ix.entries)
}

// All iterates over every indexed policy; it makes the Index a
// cedar.PolicyIterator for unindexed evaluation.
func (ix *Index) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		if ix == nil {
			return
		}
		for i := range ix.entries {
			if e := &ix.entries[i]; !yield(e.id, e.policy) {
				return
			}
		}
	}
}

// inline is how many ancestors, and how many candidate lists per request
// element, Select keeps on its stack before it allocates. Typical requests
// need a handful of each.
const inline = 16

// lineage is an entity and its transitive ancestors, as Cedar's `in`
// operator sees them through an entity store.
type lineage struct {
	uid       types.EntityUID
	ancestors []types.EntityUID // without uid itself
	// seen mirrors ancestors once there are too many for a linear scan, so
	// that an entity with thousands of groups costs linear, not quadratic,
	// time.
	seen map[types.EntityUID]struct{}
}

const linearMax = 32

func (l *lineage) has(u types.EntityUID) bool {
	if u == l.uid {
		return true
	}
	if l.seen != nil {
		_, ok := l.seen[u]
		return ok
	}
	return slices.Contains(l.ancestors, u)
}

// lineageOf computes the lineage of uid, appending its ancestors to buf
// (which the caller usually backs with a stack array; passing the slice
// rather than a *lineage keeps that array off the heap).
func lineageOf(entities types.EntityGetter, uid types.EntityUID, buf []types.EntityUID) lineage {
	l := lineage{uid: uid, ancestors: buf}
	e, ok := entities.Get(uid)
	if !ok || e.Parents.Len() == 0 {
		return l
	}
	var todoBuf [inline]types.EntityUID
	todo := todoBuf[:0]
	add := func(u types.EntityUID) {
		if l.has(u) {
			return
		}
		l.ancestors = append(l.ancestors, u)
		todo = append(todo, u)
		switch {
		case l.seen != nil:
			l.seen[u] = struct{}{}
		case len(l.ancestors) > linearMax:
			l.seen = make(map[types.EntityUID]struct{}, 2*len(l.ancestors))
			for _, a := range l.ancestors {
				l.seen[a] = struct{}{}
			}
		}
	}
	for p := range e.Parents.All() {
		add(p)
	}
	for len(todo) > 0 {
		cur := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if pe, ok := entities.Get(cur); ok {
			for p := range pe.Parents.All() {
				add(p)
			}
		}
	}
	return l
}

func (s *scope) matches(l *lineage) bool {
	switch s.kind {
	case scopeEq:
		return l.uid == s.uids[0]
	case scopeIn:
		return l.has(s.uids[0])
	case scopeIs:
		return l.uid.Type == s.typ
	case scopeIsIn:
		return l.uid.Type == s.typ && l.has(s.uids[0])
	case scopeInSet:
		if _, ok := s.uidSet[l.uid]; ok {
			return true
		}
		for _, a := range l.ancestors {
			if _, ok := s.uidSet[a]; ok {
				return true
			}
		}
		return false
	default:
		return true
	}
}

// candidates appends to buf the lists of policy positions that may match a
// request element with the given lineage, and reports how many positions
// they hold.
func (d *dimIndex) candidates(l *lineage, buf [][]int32) ([][]int32, int) {
	n := 0
	if len(d.all) > 0 {
		buf = append(buf, d.all)
		n += len(d.all)
	}
	if list := d.byType[l.uid.Type]; len(list) > 0 {
		buf = append(buf, list)
		n += len(list)
	}
	if list := d.byUID[l.uid]; len(list) > 0 {
		buf = append(buf, list)
		n += len(list)
	}
	for _, a := range l.ancestors {
		if list := d.byUID[a]; len(list) > 0 {
			buf = append(buf, list)
			n += len(list)
		}
	}
	return buf, n
}

// Selection is the subset of an Index that can apply to one request. It is a
// cedar.PolicyIterator.
type Selection struct {
	ix  *Index
	pos []int32
}

// All iterates over the selected policies in ID order. The policies come
// without their scopes, which Select has already checked: evaluated for the
// request they were selected for, they decide exactly as the originals.
func (s Selection) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		for _, i := range s.pos {
			e := &s.ix.entries[i]
			if !yield(e.id, e.unscopedPolicy()) {
				return
			}
		}
	}
}

// Len reports how many policies were selected.
func (s Selection) Len() int { return len(s.pos) }

// Select returns the policies whose scopes match the request's principal,
// action and resource, given the entity store the request is evaluated
// against.
//
// Select is on the path of every decision; apart from the returned
// positions it works on its own stack unless the request's entities have
// unusually many ancestors.
func (ix *Index) Select(entities types.EntityGetter, principal, action, resource types.EntityUID) Selection {
	if ix == nil || len(ix.entries) == 0 {
		return Selection{ix: ix}
	}
	if entities == nil {
		entities = types.EntityMap(nil)
	}
	var ancestors [3][inline]types.EntityUID
	lines := [3]lineage{
		lineageOf(entities, principal, ancestors[0][:0]),
		lineageOf(entities, action, ancestors[1][:0]),
		lineageOf(entities, resource, ancestors[2][:0]),
	}
	// Start from the element with the fewest candidates, then check every
	// scope of each candidate.
	var lists [3][inline][]int32
	var bufs [3][][]int32
	best, bestN := 0, -1
	for d := range ix.dims {
		var n int
		bufs[d], n = ix.dims[d].candidates(&lines[d], lists[d][:0])
		if bestN < 0 || n < bestN {
			best, bestN = d, n
		}
	}
	if bestN == 0 {
		return Selection{ix: ix}
	}
	var pos []int32
	for _, list := range bufs[best] {
		for _, i := range list {
			e := &ix.entries[i]
			if e.scopes[0].matches(&lines[0]) && e.scopes[1].matches(&lines[1]) && e.scopes[2].matches(&lines[2]) {
				if pos == nil {
					pos = make([]int32, 0, bestN)
				}
				pos = append(pos, i)
			}
		}
	}
	if len(bufs[best]) > 1 {
		slices.Sort(pos)
		pos = slices.Compact(pos)
	}
	return Selection{ix: ix, pos: pos}
}

func (ix *Index) find(id cedar.PolicyID) *indexEntry {
	if ix == nil {
		return nil
	}
	i := sort.Search(len(ix.entries), func(i int) bool { return ix.entries[i].id >= id })
	if i == len(ix.entries) || ix.entries[i].id != id {
		return nil
	}
	return &ix.entries[i]
}

// Get returns the policy with the given ID, or nil.
func (ix *Index) Get(id cedar.PolicyID) *cedar.Policy {
	if e := ix.find(id); e != nil {
		return e.policy
	}
	return nil
}

// Annotations returns the annotations of the policy with the given ID, or
// nil when it has none. The map is built once per index and shared by every
// caller: it must not be modified.
func (ix *Index) Annotations(id cedar.PolicyID) map[string]string {
	if e := ix.find(id); e != nil {
		return e.annotations
	}
	return nil
}

// Get returns the policy with the given ID from the whole index, so that a
// Selection can resolve annotations of its reasons.
func (s Selection) Get(id cedar.PolicyID) *cedar.Policy { return s.ix.Get(id) }

// Annotations is Index.Annotations of the index the selection came from.
func (s Selection) Annotations(id cedar.PolicyID) map[string]string { return s.ix.Annotations(id) }
