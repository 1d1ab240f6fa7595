// Package admin serves Vigil's admin API: policy versions (inspect, push,
// roll back), entities, and — when wired — live state and signals. Every
// route requires authentication; the caller wraps the handler with
// apiauth.Require.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/vigil-authz/vigil/internal/policy"
	"github.com/vigil-authz/vigil/internal/problem"
)

// MaxBodyBytes bounds admin request bodies (a bundle's files plus JSON
// overhead).
const MaxBodyBytes = policy.MaxTotal + 8<<20

// Options configure the admin API.
type Options struct {
	Policies *policy.Store
	Log      *slog.Logger
	// OnActivate is called after a push, entity update or rollback
	// activated a version (for metrics).
	OnActivate func(source string, v *policy.Version, changed bool, err error)
	// Activator, when set, replicates pushes, entity updates and rollbacks
	// to every replica instead of applying them to Policies directly
	// (internal/replica implements it).
	Activator Activator
}

// Activator publishes policy activations for every replica. Both methods
// return once this replica has applied the change, with the policy
// sequence a client passes as X-Vigil-Min-Policy-Seq. Compile errors are
// *policy.CompileError, unknown versions wrap policy.ErrUnknownVersion;
// anything else means the change could not be recorded (retry).
type Activator interface {
	Activate(ctx context.Context, b policy.Bundle, source string) (v *policy.Version, changed bool, seq uint64, err error)
	Rollback(ctx context.Context, id string) (v *policy.Version, changed bool, seq uint64, err error)
}

// activateTimeout bounds a replicated activation: compiling, storing the
// bundle, recording it and applying it here.
const activateTimeout = 30 * time.Second

// Handler is the admin API.
type Handler struct {
	opts Options
	mux  *http.ServeMux
}

// New builds the admin API handler. Extra routes (signals, state) can be
// added with Handle.
func New(o Options) *Handler {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{opts: o, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /admin/v1/policies", h.getPolicies)
	h.mux.HandleFunc("POST /admin/v1/policies", h.pushPolicies)
	h.mux.HandleFunc("GET /admin/v1/policies/versions/{id}", h.getVersion)
	h.mux.HandleFunc("POST /admin/v1/policies/rollback", h.rollback)
	h.mux.HandleFunc("GET /admin/v1/entities", h.getEntities)
	h.mux.HandleFunc("PUT /admin/v1/entities", h.putEntities)
	h.mux.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
		problem.Error(w, http.StatusNotFound, "no admin route "+r.Method+" "+r.URL.Path+"; see docs/admin-api.md")
	})
	return h
}

// Handle adds a route (Go 1.22 pattern syntax) to the admin API.
func (h *Handler) Handle(pattern string, handler http.Handler) { h.mux.Handle(pattern, handler) }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// VersionInfo is the JSON form of a policy version.
type VersionInfo struct {
	ID          string    `json:"id"`
	ActivatedAt time.Time `json:"activated_at"`
	Source      string    `json:"source"`
	Policies    int       `json:"policies"`
	Entities    int       `json:"entities"`
	Active      bool      `json:"active"`
}

func info(v *policy.Version, active *policy.Version) VersionInfo {
	return VersionInfo{ID: v.ID, ActivatedAt: v.ActivatedAt, Source: v.Source, Policies: v.Policies,
		Entities: v.Entities, Active: active != nil && active.ID == v.ID}
}

// PoliciesStatus is the body of GET /admin/v1/policies.
type PoliciesStatus struct {
	Active       *VersionInfo     `json:"active"`
	History      []VersionInfo    `json:"history"`
	LastRejected *policy.Rejected `json:"last_rejected"`
}

func (h *Handler) getPolicies(w http.ResponseWriter, r *http.Request) {
	st := h.opts.Policies
	active := st.Active()
	out := PoliciesStatus{History: []VersionInfo{}, LastRejected: st.LastRejected()}
	if active != nil {
		i := info(active, active)
		out.Active = &i
	}
	for _, v := range st.History() {
		out.History = append(out.History, info(v, active))
	}
	writeJSON(w, http.StatusOK, out)
}

// Bundle is the JSON form of a policy bundle: file name → content.
type Bundle struct {
	Files map[string]string `json:"files"`
}

func (b Bundle) toPolicy() policy.Bundle {
	var pb policy.Bundle
	for name, data := range b.Files {
		pb.Files = append(pb.Files, policy.File{Name: name, Data: []byte(data)})
	}
	return pb
}

func fromPolicy(pb policy.Bundle) Bundle {
	b := Bundle{Files: map[string]string{}}
	for _, f := range pb.Files {
		b.Files[f.Name] = string(f.Data)
	}
	return b
}

// ActivationResult is the body of a successful push, entity update or
// rollback.
type ActivationResult struct {
	Version VersionInfo `json:"version"`
	Changed bool        `json:"changed"`
	// PolicySeq is the policy sequence at which the version is active on
	// every replica that has reached it: send it as X-Vigil-Min-Policy-Seq
	// to read your write on any replica (0 without replication).
	PolicySeq uint64 `json:"policy_seq,omitempty"`
}

func (h *Handler) pushPolicies(w http.ResponseWriter, r *http.Request) {
	var b Bundle
	if !decodeBody(w, r, &b) {
		return
	}
	if len(b.Files) == 0 {
		problem.Error(w, http.StatusBadRequest, `"files" must map at least one file name (e.g. "main.cedar") to its content`)
		return
	}
	h.activate(w, r, "push", b.toPolicy())
}

func (h *Handler) activate(w http.ResponseWriter, r *http.Request, source string, b policy.Bundle) {
	var (
		v       *policy.Version
		changed bool
		seq     uint64
		err     error
	)
	if h.opts.Activator != nil {
		ctx, cancel := context.WithTimeout(r.Context(), activateTimeout)
		v, changed, seq, err = h.opts.Activator.Activate(ctx, b, source)
		cancel()
	} else {
		v, changed, err = h.opts.Policies.Apply(b, source)
	}
	if h.opts.OnActivate != nil {
		h.opts.OnActivate(source, v, changed, err)
	}
	if err != nil {
		var ce *policy.CompileError
		if !errors.As(err, &ce) && h.opts.Activator != nil {
			h.opts.Log.Warn("policy push could not be recorded", "source", source, "err", err)
			w.Header().Set("Retry-After", "1")
			problem.Error(w, http.StatusServiceUnavailable, "the policy set could not be recorded for every replica: "+err.Error())
			return
		}
		d := problem.Details{Status: http.StatusUnprocessableEntity, Title: "Policy set rejected",
			Detail: "the policy set has errors; the active version keeps serving"}
		if errors.As(err, &ce) {
			d.Extra = map[string]any{"problems": ce.Problems}
		} else {
			d.Detail = err.Error()
		}
		h.opts.Log.Warn("policy push rejected", "source", source, "err", err)
		problem.Write(w, d)
		return
	}
	if changed {
		h.opts.Log.Info("policy version activated", "source", source, "version", v.ID, "policies", v.Policies)
	}
	writeJSON(w, http.StatusOK, ActivationResult{Version: info(v, h.opts.Policies.Active()), Changed: changed, PolicySeq: seq})
}

// VersionDetail is the body of GET /admin/v1/policies/versions/{id}.
type VersionDetail struct {
	VersionInfo
	Files map[string]string `json:"files"`
}

func (h *Handler) getVersion(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	active := h.opts.Policies.Active()
	for _, v := range h.opts.Policies.History() {
		if v.ID == id || (id == "active" && active != nil && v.ID == active.ID) {
			writeJSON(w, http.StatusOK, VersionDetail{VersionInfo: info(v, active), Files: fromPolicy(v.Snapshot.Bundle).Files})
			return
		}
	}
	problem.Error(w, http.StatusNotFound, fmt.Sprintf("no policy version %q in the history; GET /admin/v1/policies lists them", id))
}

func (h *Handler) rollback(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Version string `json:"version"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Version == "" {
		problem.Error(w, http.StatusBadRequest, `"version" is required: the ID of a version from GET /admin/v1/policies`)
		return
	}
	var (
		v   *policy.Version
		seq uint64
		err error
	)
	if h.opts.Activator != nil {
		ctx, cancel := context.WithTimeout(r.Context(), activateTimeout)
		v, _, seq, err = h.opts.Activator.Rollback(ctx, req.Version)
		cancel()
	} else {
		v, err = h.opts.Policies.Rollback(req.Version)
	}
	if h.opts.OnActivate != nil {
		h.opts.OnActivate("rollback", v, err == nil, err)
	}
	if err != nil {
		if !errors.Is(err, policy.ErrUnknownVersion) {
			w.Header().Set("Retry-After", "1")
			problem.Error(w, http.StatusServiceUnavailable, "the rollback could not be recorded for every replica: "+err.Error())
			return
		}
		problem.Error(w, http.StatusNotFound, err.Error())
		return
	}
	h.opts.Log.Info("policy version rolled back", "version", v.ID)
	writeJSON(w, http.StatusOK, ActivationResult{Version: info(v, h.opts.Policies.Active()), Changed: true, PolicySeq: seq})
}

func (h *Handler) getEntities(w http.ResponseWriter, r *http.Request) {
	snap := h.opts.Policies.Current()
	if snap == nil {
		problem.Error(w, http.StatusServiceUnavailable, "no active policy set")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Vigil-Policy-Version", snap.ID)
	_ = json.NewEncoder(w).Encode(snap.Entities)
}

// putEntities replaces every entity file of the active bundle with the
// posted entities (Cedar entities JSON) and activates the result as a new
// version.
func (h *Handler) putEntities(w http.ResponseWriter, r *http.Request) {
	active := h.opts.Policies.Active()
	if active == nil {
		problem.Error(w, http.StatusServiceUnavailable, "no active policy set to add entities to")
		return
	}
	var raw json.RawMessage
	if !decodeBody(w, r, &raw) {
		return
	}
	var b policy.Bundle
	for _, f := range active.Snapshot.Bundle.Files {
		if policy.Kind(f.Name) != "entities" {
			b.Files = append(b.Files, f)
		}
	}
	b.Files = append(b.Files, policy.File{Name: "admin.entities.json", Data: slices.Clone(raw)})
	h.activate(w, r, "push", b)
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	ct := r.Header.Get("Content-Type")
	if ct != "" && !strings.HasPrefix(ct, "application/json") {
		problem.Error(w, http.StatusUnsupportedMediaType, "send Content-Type: application/json")
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			problem.Error(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds %d bytes", MaxBodyBytes))
			return false
		}
		problem.Error(w, http.StatusBadRequest, "read body: "+err.Error())
		return false
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		problem.Error(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return false
	}
	if dec.More() {
		problem.Error(w, http.StatusBadRequest, "invalid JSON body: unexpected data after the JSON value")
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
