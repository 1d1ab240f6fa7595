package policytest

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/vigil-authz/vigil/internal/decision"
	"github.com/vigil-authz/vigil/internal/policy"
)

// Eval decides req against snap, as `vigil eval` does.
func Eval(snap *policy.Snapshot, req Request) decision.Result {
	return decision.Decide(snap, req.Decision(snap))
}

// EvalOutput is the JSON form of a `vigil eval` result.
type EvalOutput struct {
	Decision      string               `json:"decision"` // "allow" or "deny"
	Principal     string               `json:"principal"`
	Action        string               `json:"action"`
	Resource      string               `json:"resource"`
	Determining   []EvalPolicy         `json:"determining"`
	Errors        []decision.EvalError `json:"errors"`
	PolicyVersion string               `json:"policy_version,omitempty"`
	Evaluated     int                  `json:"evaluated"`
}

// EvalPolicy is a determining policy in EvalOutput.
type EvalPolicy struct {
	ID          string            `json:"id"`
	Effect      string            `json:"effect"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// NewEvalOutput builds the JSON form of a decision.
func NewEvalOutput(req Request, res decision.Result) EvalOutput {
	out := EvalOutput{
		Decision:      word(res.Allow),
		Principal:     req.Principal.String(),
		Action:        req.Action.String(),
		Resource:      req.Resource.String(),
		Determining:   make([]EvalPolicy, 0, len(res.Determining)),
		Errors:        res.Errors,
		PolicyVersion: res.PolicyVersion,
		Evaluated:     res.Evaluated,
	}
	if out.Errors == nil {
		out.Errors = []decision.EvalError{}
	}
	for _, p := range res.Determining {
		out.Determining = append(out.Determining, EvalPolicy{ID: p.ID, Effect: p.Effect, Annotations: p.Annotations})
	}
	return out
}

// WriteResult prints the decision for req: in JSON when asJSON is set,
// otherwise in a human form such as
//
//	DENY  User::"alice"  Action::"DELETE /documents/{id}"  Document::"d1"
//	determining policies:
//	  step-up-for-delete (forbid) @acr_values("urn:vigil:mfa") @max_age("300")
//	evaluation errors: none
//	policy version 3f1c0de2a9b84e51: 3 policies evaluated
func WriteResult(w io.Writer, req Request, res decision.Result, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(NewEvalOutput(req, res))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %s  %s  %s\n", strings.ToUpper(word(res.Allow)), req.Principal, req.Action, req.Resource)
	if len(res.Determining) == 0 {
		if res.Allow {
			b.WriteString("determining policies: none\n")
		} else {
			b.WriteString("determining policies: none (no policy permits this request: default deny)\n")
		}
	} else {
		b.WriteString("determining policies:\n")
		for _, p := range res.Determining {
			fmt.Fprintf(&b, "  %s (%s)", p.ID, p.Effect)
			keys := make([]string, 0, len(p.Annotations))
			for k := range p.Annotations {
				if k != "id" {
					keys = append(keys, k)
				}
			}
			slices.Sort(keys)
			for _, k := range keys {
				fmt.Fprintf(&b, " @%s(%q)", k, p.Annotations[k])
			}
			b.WriteByte('\n')
		}
	}
	if len(res.Errors) == 0 {
		b.WriteString("evaluation errors: none\n")
	} else {
		b.WriteString("evaluation errors (any evaluation error denies):\n")
		for _, e := range res.Errors {
			fmt.Fprintf(&b, "  %s: %s\n", e.PolicyID, e.Message)
		}
	}
	if res.PolicyVersion != "" {
		fmt.Fprintf(&b, "policy version %s: %d policies evaluated\n", res.PolicyVersion, res.Evaluated)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
