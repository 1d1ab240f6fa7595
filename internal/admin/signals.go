package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-authz/vigil/internal/problem"
	"github.com/vigil-authz/vigil/internal/state"
)

// LiveState is what the signals and state routes need from the live-state
// store.
type LiveState interface {
	Publish(ctx context.Context, sig state.Signal) (uint64, error)
	Current() *state.Snapshot
	Recent(ctx context.Context, n int) ([]state.Record, error)
}

var _ LiveState = (*state.Store)(nil)

// MountSignals adds the signals and state routes:
//
//	POST /admin/v1/signals        record a signal (200 once in force on this node)
//	GET  /admin/v1/signals?limit= the newest journalled signals
//	GET  /admin/v1/state?sub=...  the live facts for a subject/session/token/device
func (h *Handler) MountSignals(st LiveState) {
	h.mux.HandleFunc("POST /admin/v1/signals", func(w http.ResponseWriter, r *http.Request) { h.postSignal(w, r, st) })
	h.mux.HandleFunc("GET /admin/v1/signals", func(w http.ResponseWriter, r *http.Request) { h.listSignals(w, r, st) })
	h.mux.HandleFunc("GET /admin/v1/state", func(w http.ResponseWriter, r *http.Request) { h.getState(w, r, st) })
}

// SignalAccepted is the body of a successful POST /admin/v1/signals.
type SignalAccepted struct {
	ID   string     `json:"id"`
	Kind state.Kind `json:"kind"`
	// Seq is the journal sequence; decisions made at or after it reflect
	// the signal.
	Seq uint64 `json:"seq"`
}

func (h *Handler) postSignal(w http.ResponseWriter, r *http.Request, st LiveState) {
	var sig state.Signal
	if !decodeBody(w, r, &sig) {
		return
	}
	if sig.ID == "" {
		var b [12]byte
		_, _ = rand.Read(b[:])
		sig.ID = hex.EncodeToString(b[:])
	}
	if !strings.HasPrefix(sig.ID, "admin:") {
		sig.ID = "admin:" + sig.ID
	}
	sig.Source = "admin"
	if sig.EventType == "" {
		sig.EventType = "vigil:admin:" + string(sig.Kind)
	}
	if sig.EventTime.IsZero() {
		sig.EventTime = time.Now()
	}
	if sig.Kind == state.KindIgnored || !sig.Kind.Valid() {
		problem.Error(w, http.StatusBadRequest, "kind "+strconvQuote(string(sig.Kind))+" is not a signal kind; use one of "+kindList())
		return
	}
	if err := sig.Validate(); err != nil {
		problem.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	seq, err := st.Publish(ctx, sig)
	switch {
	case err == nil:
	case errors.Is(err, state.ErrInvalid):
		problem.Error(w, http.StatusBadRequest, err.Error())
		return
	case errors.Is(err, state.ErrCapacity), errors.Is(err, state.ErrUnavailable), errors.Is(err, state.ErrClosed):
		w.Header().Set("Retry-After", "1")
		problem.Error(w, http.StatusServiceUnavailable, err.Error())
		return
	default:
		problem.Error(w, http.StatusInternalServerError, "record signal: "+err.Error())
		return
	}
	h.opts.Log.Info("admin signal recorded", "id", sig.ID, "kind", sig.Kind, "subject", sig.Subject.String(), "seq", seq)
	writeJSON(w, http.StatusOK, SignalAccepted{ID: sig.ID, Kind: sig.Kind, Seq: seq})
}

func kindList() string {
	ks := state.Kinds()
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

func strconvQuote(s string) string { return strconv.Quote(s) }

func (h *Handler) listSignals(w http.ResponseWriter, r *http.Request, st LiveState) {
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > state.MaxRecent {
			problem.Error(w, http.StatusBadRequest, "limit must be an integer from 1 to "+strconv.Itoa(state.MaxRecent))
			return
		}
		limit = n
	}
	recs, err := st.Recent(r.Context(), limit)
	if err != nil {
		problem.Error(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	if recs == nil {
		recs = []state.Record{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"signals": recs})
}

// StateView is the body of GET /admin/v1/state.
type StateView struct {
	Query QueryView `json:"query"`
	Facts FactsView `json:"facts"`
	// Guard is what the guards decide for a token issued at iat (or of
	// unknown age when iat is not given).
	Guard GuardView `json:"guard"`
}

// FactsView is the JSON form of state.Facts.
type FactsView struct {
	RevokedBefore   *time.Time     `json:"revoked_before,omitempty"`
	RevokedReason   string         `json:"revoked_reason,omitempty"`
	Disabled        bool           `json:"disabled"`
	Purged          bool           `json:"purged"`
	AccountReason   string         `json:"account_reason,omitempty"`
	ClaimOverrides  map[string]any `json:"claim_overrides,omitempty"`
	Assurance       *AssuranceView `json:"assurance,omitempty"`
	DeviceCompliant *bool          `json:"device_compliant,omitempty"`
	Risk            RiskView       `json:"risk"`
	Seq             uint64         `json:"seq"`
}

// QueryView is the JSON form of state.Query.
type QueryView struct {
	Issuer    string     `json:"iss,omitempty"`
	Subject   string     `json:"sub,omitempty"`
	Email     string     `json:"email,omitempty"`
	Phone     string     `json:"phone,omitempty"`
	SessionID string     `json:"sid,omitempty"`
	TokenID   string     `json:"jti,omitempty"`
	DeviceID  string     `json:"device,omitempty"`
	ClientID  string     `json:"client_id,omitempty"`
	Tenant    string     `json:"tenant,omitempty"`
	IssuedAt  *time.Time `json:"iat,omitempty"`
}

// AssuranceView is the JSON form of state.Assurance.
type AssuranceView struct {
	Namespace string    `json:"namespace"`
	Level     string    `json:"level"`
	Time      time.Time `json:"time"`
}

// RiskView is the JSON form of state.RiskFact.
type RiskView struct {
	Score   int        `json:"score"`
	Level   string     `json:"level,omitempty"`
	Reasons []string   `json:"reasons,omitempty"`
	Time    *time.Time `json:"time,omitempty"`
}

// GuardView reports the guard outcome.
type GuardView struct {
	Deny      bool       `json:"deny"`
	Reason    string     `json:"reason,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

func (h *Handler) getState(w http.ResponseWriter, r *http.Request, st LiveState) {
	q := r.URL.Query()
	query := state.Query{
		Issuer: q.Get("iss"), Subject: q.Get("sub"), Email: q.Get("email"), Phone: q.Get("phone"),
		SessionID: q.Get("sid"), TokenID: q.Get("jti"), DeviceID: q.Get("device"), ClientID: q.Get("client_id"),
		Tenant: q.Get("tenant"),
	}
	if query == (state.Query{}) {
		problem.Error(w, http.StatusBadRequest, "name what to look up: sub (with iss), email, phone, sid, jti (with iss), device, client_id or tenant")
		return
	}
	if v := q.Get("iat"); v != "" {
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			problem.Error(w, http.StatusBadRequest, "iat must be a Unix time in seconds")
			return
		}
		query.IssuedAt = time.Unix(sec, 0)
	}
	f := st.Current().Facts(query)
	out := StateView{
		Query: QueryView{Issuer: query.Issuer, Subject: query.Subject, Email: query.Email, Phone: query.Phone,
			SessionID: query.SessionID, TokenID: query.TokenID, DeviceID: query.DeviceID, ClientID: query.ClientID, Tenant: query.Tenant},
		Facts: FactsView{
			RevokedReason: f.RevokedReason, Disabled: f.Disabled, Purged: f.Purged, AccountReason: f.AccountReason,
			ClaimOverrides: f.ClaimOverrides, DeviceCompliant: f.DeviceCompliant, Seq: f.Seq,
			Risk: RiskView{Score: f.Risk.Score, Level: f.Risk.Level, Reasons: f.Risk.Reasons},
		},
	}
	if !query.IssuedAt.IsZero() {
		out.Query.IssuedAt = &query.IssuedAt
	}
	if f.Assurance != nil {
		out.Facts.Assurance = &AssuranceView{Namespace: f.Assurance.Namespace, Level: f.Assurance.Level, Time: f.Assurance.Time}
	}
	if !f.Risk.Time.IsZero() {
		t := f.Risk.Time
		out.Facts.Risk.Time = &t
	}
	if !f.RevokedBefore.IsZero() {
		t := f.RevokedBefore
		out.Facts.RevokedBefore = &t
	}
	deny, reason, at := f.Guard(query.IssuedAt)
	out.Guard = GuardView{Deny: deny, Reason: reason}
	if !at.IsZero() {
		out.Guard.RevokedAt = &at
	}
	writeJSON(w, http.StatusOK, out)
}
