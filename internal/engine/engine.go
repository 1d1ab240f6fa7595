// Package engine joins the pieces every enforcement surface needs to make a
// decision: the active policy snapshot and the live state snapshot. A View
// pins one consistent pair; all decisions of one HTTP request (an AuthZEN
// batch, a search) use one View so they never mix versions.
package engine

import (
	"github.com/vigil-authz/vigil/internal/decision"
	"github.com/vigil-authz/vigil/internal/policy"
)

// Engine hands out Views over the current policies (and, once wired, live
// state).
type Engine struct {
	Policies *policy.Store
}

// New returns an Engine over a policy store.
func New(policies *policy.Store) *Engine {
	return &Engine{Policies: policies}
}

// View is a consistent, immutable pair of snapshots.
type View struct {
	Policies *policy.Snapshot
}

// View pins the current snapshots.
func (e *Engine) View() View {
	return View{Policies: e.Policies.Current()}
}

// Ready reports whether a policy set is active.
func (v View) Ready() bool { return v.Policies != nil }

// Decide decides req against the view. It is safe for concurrent use.
func (v View) Decide(req decision.Request) decision.Result {
	return decision.Decide(v.Policies, req)
}
