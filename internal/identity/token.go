package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Token is a verified access token: the facts established by its signature
// (or by introspection) and its claims.
//
// A *Token returned by Verify is shared between callers (it may come from
// the verified-token cache) and must be treated as read-only, including its
// slices and the Claims map.
type Token struct {
	Issuer    string
	Subject   string
	Audience  []string
	IssuedAt  time.Time // zero when absent
	NotBefore time.Time // zero when absent
	Expiry    time.Time // always set for JWTs; zero when an introspection response has no exp
	JTI       string
	SessionID string // "sid"
	ClientID  string // "client_id", else "azp"
	Scopes    []string
	ACR       string
	AMR       []string
	// Roles are taken from the issuer's roles_claim, in token order,
	// without duplicates.
	Roles []string
	// Claims holds every claim as decoded from JSON: strings, bool,
	// json.Number (numbers keep their exact text), []any, map[string]any.
	Claims map[string]any
	// PrincipalType and RoleType are the issuer's configured Cedar entity
	// types for the subject and the roles.
	PrincipalType string
	RoleType      string
	// RawHash is the SHA-256 of the raw token string. It identifies the
	// token in caches and logs without revealing it.
	RawHash [32]byte
	// Introspected is set when the token is opaque and was validated by
	// RFC 7662 introspection rather than by a signature.
	Introspected bool
}

// Claim returns the claim at path: a top-level claim name, or a dotted path
// into nested objects ("realm_access.roles"). The exact top-level name wins,
// so namespaced claims such as "https://example.com/roles" work.
func (t *Token) Claim(path string) (any, bool) {
	return lookupClaim(t.Claims, path)
}

// HasScope reports whether the token grants scope s.
func (t *Token) HasScope(s string) bool {
	return slices.Contains(t.Scopes, s)
}

func lookupClaim(claims map[string]any, path string) (any, bool) {
	if path == "" {
		return nil, false
	}
	if v, ok := claims[path]; ok {
		return v, true
	}
	var cur any = claims
	for seg := range strings.SplitSeq(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[seg]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// maxNumericDate is 9999-12-31T23:59:59Z; later dates are rejected rather
// than overflowing time arithmetic.
const maxNumericDate = 253402300799

// decodeClaims decodes a JSON object of claims. It rejects invalid UTF-8
// (RFC 8725 §3.7), duplicate top-level members (which different parsers
// resolve differently) and trailing data. Numbers are kept as json.Number.
func decodeClaims(b []byte) (map[string]any, error) {
	if !utf8.Valid(b) {
		return nil, errors.New("claims are not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("decode claims: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("claims are not a JSON object")
	}
	m := make(map[string]any, 16)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("decode claims: %w", err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, errors.New("decode claims: member name is not a string")
		}
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("claim %q appears twice", name)
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("decode claim %q: %w", name, err)
		}
		m[name] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("decode claims: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("decode claims: trailing data after the JSON object")
	}
	return m, nil
}

// claimRules are the issuer's rules applied when turning claims into a
// Token.
type claimRules struct {
	issuer        string
	audiences     []string
	leeway        time.Duration
	rolesClaim    string
	principalType string
	roleType      string
	// requireRFC9068 requires the RFC 9068 claims iat, jti and client_id.
	requireRFC9068 bool
}

// tokenFromClaims validates claims and builds the Token. For JWTs (strict)
// iss, sub, aud and exp are required; for introspection responses only sub
// is, and iss, aud, exp are checked when present.
func (r *claimRules) tokenFromClaims(claims map[string]any, hash [32]byte, now time.Time, strict bool) (*Token, *Error) {
	t := &Token{
		Claims:        claims,
		PrincipalType: r.principalType,
		RoleType:      r.roleType,
		RawHash:       hash,
		Introspected:  !strict,
	}
	var err error
	str := func(name string) string {
		if err != nil {
			return ""
		}
		v, ok := claims[name]
		if !ok {
			return ""
		}
		s, ok := v.(string)
		if !ok {
			err = fmt.Errorf("claim %q: want a string, got %s", name, typeName(v))
		}
		return s
	}
	date := func(name string) time.Time {
		if err != nil {
			return time.Time{}
		}
		v, ok := claims[name]
		if !ok {
			return time.Time{}
		}
		d, derr := numericDate(v)
		if derr != nil {
			err = fmt.Errorf("claim %q: %w", name, derr)
		}
		return d
	}
	strs := func(name string, split bool) []string {
		if err != nil {
			return nil
		}
		v, ok := claims[name]
		if !ok {
			return nil
		}
		out, serr := stringList(v, split)
		if serr != nil {
			err = fmt.Errorf("claim %q: %w", name, serr)
		}
		return out
	}

	iss := str("iss")
	t.Subject = str("sub")
	t.JTI = str("jti")
	t.SessionID = str("sid")
	t.ClientID = str("client_id")
	if t.ClientID == "" {
		t.ClientID = str("azp")
	}
	t.ACR = str("acr")
	t.AMR = strs("amr", false)
	t.Audience = strs("aud", false)
	t.Scopes = strs("scope", true)
	if t.Scopes == nil {
		t.Scopes = strs("scp", true)
	}
	t.Expiry = date("exp")
	t.NotBefore = date("nbf")
	t.IssuedAt = date("iat")
	if err != nil {
		return nil, invalidErr(DescMalformed, "invalid claim type", err)
	}
	if r.rolesClaim != "" {
		if v, ok := lookupClaim(claims, r.rolesClaim); ok {
			t.Roles = roleList(v)
		}
	}

	// Issuer: exact match.
	_, hasISS := claims["iss"]
	switch {
	case hasISS && iss != r.issuer:
		return nil, invalid(DescIssuer, fmt.Sprintf("iss %q does not equal the configured issuer %q", iss, r.issuer))
	case !hasISS && strict:
		return nil, invalid(DescMissingClaim, "missing claim iss")
	}
	t.Issuer = r.issuer

	if t.Subject == "" {
		return nil, invalid(DescMissingClaim, "missing or empty claim sub")
	}

	// Audience: must contain one of ours.
	_, hasAUD := claims["aud"]
	if hasAUD || strict {
		if !slices.ContainsFunc(t.Audience, func(a string) bool { return slices.Contains(r.audiences, a) }) {
			return nil, invalid(DescAudience, fmt.Sprintf("aud %q contains none of the accepted audiences %q", t.Audience, r.audiences))
		}
	}

	// Time claims, with leeway for clock skew.
	_, hasEXP := claims["exp"]
	switch {
	case !hasEXP && strict:
		return nil, invalid(DescMissingClaim, "missing claim exp")
	case hasEXP && !now.Before(t.Expiry.Add(r.leeway)):
		return nil, invalid(DescExpired, fmt.Sprintf("exp %s is not after now %s (leeway %s)", t.Expiry.Format(time.RFC3339), now.UTC().Format(time.RFC3339), r.leeway))
	}
	if _, ok := claims["nbf"]; ok && t.NotBefore.After(now.Add(r.leeway)) {
		return nil, invalid(DescNotYetValid, fmt.Sprintf("nbf %s is after now %s (leeway %s)", t.NotBefore.Format(time.RFC3339), now.UTC().Format(time.RFC3339), r.leeway))
	}
	if _, ok := claims["iat"]; ok && t.IssuedAt.After(now.Add(r.leeway)) {
		return nil, invalid(DescIssuedInFuture, fmt.Sprintf("iat %s is after now %s (leeway %s)", t.IssuedAt.Format(time.RFC3339), now.UTC().Format(time.RFC3339), r.leeway))
	}

	if strict {
		// A Security Event Token is never an access token, whatever its
		// header says (RFC 8417 §2.3: mutually exclusive validation).
		if _, ok := claims["events"]; ok {
			return nil, invalid(DescType, "token carries an \"events\" claim (a security event token)")
		}
		if r.requireRFC9068 {
			for _, name := range []string{"iat", "jti", "client_id"} {
				if _, ok := claims[name]; !ok {
					return nil, invalid(DescMissingClaim, "missing claim "+name+" required by RFC 9068 for at+jwt tokens")
				}
			}
		}
	}
	return t, nil
}

// numericDate converts a JSON NumericDate (seconds since the epoch, possibly
// fractional) to a time.
func numericDate(v any) (time.Time, error) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, fmt.Errorf("want a number, got %s", typeName(v))
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, fmt.Errorf("%q is not a date between 1970 and 9999", n.String())
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

// stringList accepts a string (split on spaces when split is set, else a
// one-element list) or an array of strings.
func stringList(v any, split bool) ([]string, error) {
	switch v := v.(type) {
	case string:
		if split {
			return strings.Fields(v), nil
		}
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("want an array of strings, found %s", typeName(e))
			}
			out = append(out, s)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("want a string or an array of strings, got %s", typeName(v))
	}
}

// roleList extracts role names from a roles claim: a string (one role) or
// an array; non-string and empty elements are skipped, duplicates dropped.
func roleList(v any) []string {
	switch v := v.(type) {
	case string:
		if v == "" {
			return nil
		}
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		seen := make(map[string]struct{}, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if _, dup := seen[s]; !ok || s == "" || dup {
				continue
			}
			seen[s] = struct{}{}
			out = append(out, s)
		}
		return out
	default:
		return nil
	}
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	default:
		return fmt.Sprintf("%T", v)
	}
}
