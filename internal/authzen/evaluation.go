package authzen

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/vigil-authz/vigil/internal/decision"
)

var (
	respAllow = []byte(`{"decision":true}`)
	respDeny  = []byte(`{"decision":false}`)
)

// Evaluation semantics of a batch (options.evaluations_semantic).
const (
	semanticExecuteAll          = "execute_all"
	semanticDenyOnFirstDeny     = "deny_on_first_deny"
	semanticPermitOnFirstPermit = "permit_on_first_permit"
)

// evaluation serves POST /access/v1/evaluation. A non-zero status is a
// whole-request error for the caller to report.
func (h *Handler) evaluation(w http.ResponseWriter, c *call, doc *node) (int, string) {
	in, err := h.parseEval(doc, nil, c.view.Policies.Entities, false)
	if err != nil {
		return http.StatusBadRequest, err.Error()
	}
	res, err := h.decide(c, &in, SurfaceEvaluation)
	if err != nil {
		return http.StatusBadRequest, clashError(&in, -1).Error()
	}
	if !c.explain {
		if res.Allow {
			writeJSON(w, respAllow)
		} else {
			writeJSON(w, respDeny)
		}
		return 0, ""
	}
	writeJSON(w, appendDecision(nil, &res, true, c.view.PolicySeq))
	return 0, ""
}

// decide assembles and decides one evaluation with the call's view.
func (h *Handler) decide(c *call, in *evalInput, surface string) (decision.Result, error) {
	req, err := in.request()
	if err != nil {
		return decision.Result{}, err
	}
	if h.rec == nil {
		return c.view.Decide(req), nil
	}
	start := time.Now()
	res := c.view.Decide(req)
	h.rec.Decision(surface, res.Allow, time.Since(start))
	return res, nil
}

// evaluations serves POST /access/v1/evaluations.
func (h *Handler) evaluations(w http.ResponseWriter, c *call, doc *node) (int, string) {
	store := c.view.Policies.Entities
	semantic := semanticExecuteAll
	if opts := doc.get("options"); opts != nil {
		if opts.kind != kindObject {
			return http.StatusBadRequest, fmt.Sprintf("options: must be an object, got %s", opts.kind)
		}
		if s := opts.get("evaluations_semantic"); s != nil {
			if s.kind != kindString {
				return http.StatusBadRequest, fmt.Sprintf("options.evaluations_semantic: must be a string, got %s", s.kind)
			}
			switch s.s {
			case semanticExecuteAll, semanticDenyOnFirstDeny, semanticPermitOnFirstPermit:
				semantic = s.s
			default:
				return http.StatusBadRequest, fmt.Sprintf("options.evaluations_semantic: unknown value %q; use %q, %q or %q",
					s.s, semanticExecuteAll, semanticDenyOnFirstDeny, semanticPermitOnFirstPermit)
			}
		}
	}
	items := doc.get("evaluations")
	if items != nil && items.kind != kindArray {
		return http.StatusBadRequest, fmt.Sprintf("evaluations: must be an array, got %s", items.kind)
	}
	if items == nil || len(items.kids) == 0 {
		// AuthZEN: without items the request is a single evaluation.
		return h.evaluation(w, c, doc)
	}
	if n := len(items.kids); n > h.limits.MaxEvaluations {
		return http.StatusBadRequest, fmt.Sprintf("evaluations: %d items; at most %d are allowed per request, split the batch", n, h.limits.MaxEvaluations)
	}
	def, err := h.parseEval(doc, nil, store, true)
	if err != nil {
		return http.StatusBadRequest, err.Error()
	}
	// The response array: 17 bytes per plain item plus separators.
	out := make([]byte, 0, 16+19*len(items.kids))
	out = append(out, `{"evaluations":[`...)
	for i := range items.kids {
		if i > 0 {
			out = append(out, ',')
		}
		allow := false
		ev, err := h.parseEval(&items.kids[i].val, &def, store, false)
		if err != nil {
			err = in(at(err, i), "evaluations")
		}
		var res decision.Result
		if err == nil {
			if res, err = h.decide(c, &ev, SurfaceEvaluations); err != nil {
				err = clashError(&ev, i)
			}
		}
		if err != nil {
			out = appendItemError(out, http.StatusBadRequest, err.Error())
		} else {
			allow = res.Allow
			out = appendDecision(out, &res, c.explain, c.view.PolicySeq)
		}
		if (semantic == semanticDenyOnFirstDeny && !allow) || (semantic == semanticPermitOnFirstPermit && allow) {
			break
		}
	}
	out = append(out, "]}"...)
	writeJSON(w, out)
	return 0, ""
}

// appendDecision appends {"decision":bool} and, when explaining, the
// context that says why and at which sequences it was decided.
func appendDecision(b []byte, res *decision.Result, explain bool, policySeq uint64) []byte {
	if !explain {
		if res.Allow {
			return append(b, respAllow...)
		}
		return append(b, respDeny...)
	}
	ctx := explanation(res, policySeq)
	raw, err := json.Marshal(ctx)
	if err != nil { // cannot happen: plain strings and slices
		raw = []byte(`{}`)
	}
	b = append(b, `{"decision":`...)
	if res.Allow {
		b = append(b, "true"...)
	} else {
		b = append(b, "false"...)
	}
	b = append(b, `,"context":`...)
	b = append(b, raw...)
	return append(b, '}')
}

// appendItemError appends the per-item error form AuthZEN defines for
// batches.
func appendItemError(b []byte, status int, msg string) []byte {
	b = append(b, `{"decision":false,"context":{"error":{"status":`...)
	b = fmt.Appendf(b, "%d", status)
	b = append(b, `,"message":`...)
	b, _ = jsontext.AppendQuote(b, strings.ToValidUTF8(msg, "\uFFFD"))
	return append(b, "}}}"...)
}

// explainContext is the response context returned on request.
type explainContext struct {
	ReasonAdmin map[string]string `json:"reason_admin"`
	Vigil       vigilDetail       `json:"vigil"`
}

type vigilDetail struct {
	PolicyVersion string `json:"policy_version"`
	// PolicySeq and StateSeq are the policy activation and live-state
	// journal sequences the decision was made at (read-your-writes).
	PolicySeq   uint64               `json:"policy_seq"`
	StateSeq    uint64               `json:"state_seq"`
	Determining []string             `json:"determining"`
	Errors      []decision.EvalError `json:"errors"`
	Guard       string               `json:"guard,omitempty"`
}

func explanation(res *decision.Result, policySeq uint64) explainContext {
	errs := res.Errors
	if errs == nil {
		errs = []decision.EvalError{}
	}
	return explainContext{
		ReasonAdmin: map[string]string{"en": reason(res)},
		Vigil: vigilDetail{
			PolicyVersion: res.PolicyVersion,
			PolicySeq:     policySeq,
			StateSeq:      res.StateSeq,
			Determining:   res.Reasons(),
			Errors:        errs,
			Guard:         res.Guard,
		},
	}
}

// reason is the one-line English explanation for an administrator.
func reason(res *decision.Result) string {
	var b strings.Builder
	switch {
	case res.Guard != "":
		fmt.Fprintf(&b, "denied by the live-state guard %q before policies were evaluated", res.Guard)
	case res.Allow:
		b.WriteString("permitted by " + policyList(res.Determining))
	case len(res.Determining) > 0:
		b.WriteString("denied by " + policyList(res.Determining))
	default:
		b.WriteString("denied: no policy permits this request")
	}
	if n := len(res.Errors); n > 0 {
		fmt.Fprintf(&b, "; %d %s failed to evaluate and did not apply:", n, plural(n, "policy", "policies"))
		for i, e := range res.Errors {
			if i > 0 {
				b.WriteByte(';')
			}
			if e.PolicyID != "" {
				fmt.Fprintf(&b, " %s: %s", e.PolicyID, e.Message)
			} else {
				b.WriteString(" " + e.Message)
			}
		}
	}
	return b.String()
}

func policyList(ps []decision.Policy) string {
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = fmt.Sprintf("%q", p.ID)
	}
	return plural(len(ps), "policy ", "policies ") + strings.Join(ids, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
