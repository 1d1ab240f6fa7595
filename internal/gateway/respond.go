package gateway

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-authz/vigil/internal/decision"
	"github.com/vigil-authz/vigil/internal/identity"
	"github.com/vigil-authz/vigil/internal/problem"
)

// Policy annotations the gateway understands on forbid policies.
const (
	// AnnotationACRValues on a forbid policy turns its denial into an RFC
	// 9470 step-up challenge: 401 insufficient_user_authentication with
	// acr_values set to the annotation (space-separated ACR values).
	AnnotationACRValues = "acr_values"
	// AnnotationMaxAge, next to acr_values, adds max_age (seconds since the
	// last active authentication) to the step-up challenge.
	AnnotationMaxAge = "max_age"
)

// Outcome classifies how a request ended; it is the label of logs and
// decision records.
type Outcome string

// Outcomes.
const (
	OutcomeAllow           Outcome = "allow"
	OutcomeDeny            Outcome = "deny"
	OutcomeStepUp          Outcome = "step_up"
	OutcomeRevoked         Outcome = "revoked"
	OutcomeUnauthenticated Outcome = "unauthenticated"
	OutcomeBadRequest      Outcome = "bad_request"
	OutcomeNoRoute         Outcome = "no_route"
	OutcomeUnavailable     Outcome = "unavailable"
	OutcomeError           Outcome = "error"
)

// verdict is how the gateway answers a decision.
type verdict struct {
	outcome Outcome
	status  int    // 0 when allowed
	auth    string // WWW-Authenticate, when status is 401
	detail  string // client-safe problem detail
}

// Generic client-facing details. Policy ids, reasons and errors go to the
// log only.
const (
	detailDenied        = "Access to this resource is denied."
	detailNoToken       = "This resource requires a bearer access token."
	detailInvalidToken  = "The access token is invalid."
	detailRevoked       = "The access token is no longer accepted; obtain a new one."
	detailStepUp        = "This resource requires a stronger or more recent authentication."
	detailNoPolicy      = "No authorization policy is active yet; try again shortly."
	detailStale         = "This instance cannot confirm that its authorization state is current; retry on another instance or shortly."
	detailBehind        = "This instance has not yet received the change this request waits for (X-Vigil-Min-Seq or X-Vigil-Min-Policy-Seq); retry shortly."
	detailTokenCheck    = "The access token could not be verified at this time; try again shortly."
	detailUpstreamDown  = "The upstream service is unavailable."
	detailUpstreamSlow  = "The upstream service did not answer in time."
	detailInternal      = "The request could not be authorized because of an internal error."
	detailShuttingDown  = "The gateway is shutting down; retry on another instance."
	detailUntrustedPeer = "Forward-auth requests are accepted only from trusted proxies."
)

// judge turns a decision into a verdict. tok is the caller's token (nil
// when anonymous).
func (g *Gateway) judge(res decision.Result, tok *identity.Token) verdict {
	if res.Guard != "" {
		if res.RevokedAt.IsZero() || tok == nil {
			return verdict{outcome: OutcomeDeny, status: http.StatusForbidden, detail: detailDenied}
		}
		return verdict{outcome: OutcomeRevoked, status: http.StatusUnauthorized, auth: g.revokedChallenge(res.RevokedAt, tok), detail: detailRevoked}
	}
	if res.Allow {
		return verdict{outcome: OutcomeAllow}
	}
	if acr, maxAge, ok := stepUp(res.Determining); ok {
		return verdict{outcome: OutcomeStepUp, status: http.StatusUnauthorized, auth: g.stepUpChallenge(acr, maxAge), detail: detailStepUp}
	}
	return verdict{outcome: OutcomeDeny, status: http.StatusForbidden, detail: detailDenied}
}

// stepUp reports whether a denial can be cured by authenticating again:
// every determining policy is a forbid annotated with acr_values. The
// challenge lists the union of their ACR values and the smallest max_age.
func stepUp(determining []decision.Policy) (acr string, maxAge int64, ok bool) {
	if len(determining) == 0 {
		return "", 0, false
	}
	var values []string
	maxAge = -1
	for _, p := range determining {
		if p.Effect != "forbid" {
			return "", 0, false
		}
		a, has := p.Annotations[AnnotationACRValues]
		if !has {
			return "", 0, false
		}
		fields := strings.Fields(a)
		if len(fields) == 0 {
			return "", 0, false
		}
		for _, f := range fields {
			if !challengeSafe(f) {
				return "", 0, false
			}
			if !slices.Contains(values, f) {
				values = append(values, f)
			}
		}
		if m, has := p.Annotations[AnnotationMaxAge]; has {
			n, err := strconv.ParseInt(strings.TrimSpace(m), 10, 64)
			if err != nil || n < 0 {
				return "", 0, false
			}
			if maxAge < 0 || n < maxAge {
				maxAge = n
			}
		}
	}
	return strings.Join(values, " "), maxAge, true
}

// challengeSafe reports whether s can appear inside a quoted-string of a
// WWW-Authenticate header without escaping.
func challengeSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return s != ""
}

func (g *Gateway) challenge(params ...string) string {
	var b strings.Builder
	b.WriteString(`Bearer realm="`)
	b.WriteString(g.cfg.Realm)
	b.WriteByte('"')
	for i := 0; i+1 < len(params); i += 2 {
		b.WriteString(", ")
		b.WriteString(params[i])
		b.WriteString(`="`)
		b.WriteString(params[i+1])
		b.WriteByte('"')
	}
	return b.String()
}

func (g *Gateway) noTokenChallenge() string { return g.challenge() }

func (g *Gateway) invalidTokenChallenge(desc string) string {
	if !quotedSafe(desc) {
		desc = detailInvalidToken
	}
	return g.challenge("error", "invalid_token", "error_description", desc)
}

func (g *Gateway) stepUpChallenge(acr string, maxAge int64) string {
	p := []string{"error", "insufficient_user_authentication",
		"error_description", "A different authentication level is required",
		"acr_values", acr}
	if maxAge >= 0 {
		p = append(p, "max_age", strconv.FormatInt(maxAge, 10))
	}
	return g.challenge(p...)
}

// revokedChallenge answers a request whose token was revoked. Clients that
// declared the CAE capability "cp1" (token claim xms_cc) get a claims
// challenge demanding a token issued after the revocation; others get a
// plain invalid_token, since a claims challenge would make them loop.
func (g *Gateway) revokedChallenge(at time.Time, tok *identity.Token) string {
	if !slices.Contains(clientCapabilities(tok), "cp1") {
		return g.invalidTokenChallenge("The access token has been revoked")
	}
	p := []string{}
	if g.cfg.AuthorizationURI != "" {
		p = append(p, "authorization_uri", g.cfg.AuthorizationURI)
	}
	p = append(p, "error", "insufficient_claims", "claims", claimsChallenge(at))
	return g.challenge(p...)
}

// claimsChallenge is the base64 of the OIDC claims request
// {"access_token":{"nbf":{"essential":true,"value":"<unix seconds>"}}}.
func claimsChallenge(at time.Time) string {
	doc := map[string]any{"access_token": map[string]any{
		"nbf": map[string]any{"essential": true, "value": strconv.FormatInt(at.Unix(), 10)},
	}}
	b, _ := json.Marshal(doc) // cannot fail: plain maps of strings and bools
	return base64.StdEncoding.EncodeToString(b)
}

// quotedSafe reports whether s can appear inside a quoted-string as is.
func quotedSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// writeProblem writes an RFC 9457 problem with the request id as instance.
// The detail must be client-safe.
func writeProblem(w http.ResponseWriter, status int, detail, rid string, extra map[string]any) {
	d := problem.Details{Status: status, Detail: detail, Extra: extra}
	if rid != "" {
		d.Instance = "urn:vigil:request:" + rid
		if d.Extra == nil {
			d.Extra = map[string]any{}
		}
		d.Extra["request_id"] = rid
	}
	problem.Write(w, d)
}

// writeVerdict answers a denial.
func writeVerdict(w http.ResponseWriter, v verdict, rid string) {
	if v.auth != "" {
		w.Header().Set("WWW-Authenticate", v.auth)
	}
	writeProblem(w, v.status, v.detail, rid, nil)
}
