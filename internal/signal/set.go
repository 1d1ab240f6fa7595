package signal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/vigil-authz/vigil/internal/state"
)

// MaxSETSize bounds a SET (compact JWS) accepted by push or poll.
const MaxSETSize = 64 << 10

// Error codes of RFC 8935 §2.3 (and SSF's invalid_state).
const (
	CodeInvalidRequest       = "invalid_request"
	CodeInvalidKey           = "invalid_key"
	CodeInvalidIssuer        = "invalid_issuer"
	CodeInvalidAudience      = "invalid_audience"
	CodeAuthenticationFailed = "authentication_failed"
	CodeAccessDenied         = "access_denied"
	CodeInvalidState         = "invalid_state"
)

// SETError rejects a SET. Code is an RFC 8935 error code; it is what push
// answers in {"err","description"} and poll reports in setErrs.
type SETError struct {
	Code        string
	Description string
}

func (e *SETError) Error() string { return e.Code + ": " + e.Description }

func setErr(code, format string, a ...any) *SETError {
	return &SETError{Code: code, Description: fmt.Sprintf(format, a...)}
}

// SET is a parsed Security Event Token (RFC 8417) as profiled by SSF 1.0:
// one event, a subject, no sub or exp.
type SET struct {
	Issuer    string
	JTI       string
	IssuedAt  time.Time
	Audience  []string
	Txn       string
	TOE       time.Time
	EventType string
	// Event is the event object, undecoded.
	Event json.RawMessage
	// Subject is sub_id, or the legacy events.<uri>.subject.
	Subject state.Subject
	// Algorithm and KeyID come from the protected header.
	Algorithm string
	KeyID     string
}

// header is the protected header of an unverified SET.
type header struct {
	alg, kid, typ string
}

// parseJWS parses a compact JWS and checks what can be checked before
// verification: size, one signature, explicit typing, no crit, algorithm
// in the allowlist. It returns the unverified payload.
func parseJWS(raw []byte, allowed func(alg string) bool) (header, []byte, error) {
	var h header
	if len(raw) > MaxSETSize {
		return h, nil, setErr(CodeInvalidRequest, "SET larger than %d bytes", MaxSETSize)
	}
	raw = bytes.TrimSpace(raw)
	if bytes.Count(raw, []byte{'.'}) != 2 {
		return h, nil, setErr(CodeInvalidRequest, "SET is not a compact JWS (three dot-separated parts)")
	}
	msg, err := jws.Parse(raw, jws.WithCompact())
	if err != nil {
		return h, nil, setErr(CodeInvalidRequest, "SET is not a valid JWS: %v", err)
	}
	sigs := msg.Signatures()
	if len(sigs) != 1 {
		return h, nil, setErr(CodeInvalidRequest, "SET must have exactly one signature")
	}
	ph := sigs[0].ProtectedHeaders()
	if ph == nil {
		return h, nil, setErr(CodeInvalidRequest, "SET has no protected header")
	}
	if alg, ok := ph.Algorithm(); ok {
		h.alg = alg.String()
	}
	h.kid, _ = ph.KeyID()
	h.typ, _ = ph.Type()
	if !isSETType(h.typ) {
		return h, nil, setErr(CodeInvalidRequest, "typ %q is not secevent+jwt", truncate(h.typ))
	}
	if crit, ok := ph.Critical(); ok && len(crit) > 0 {
		return h, nil, setErr(CodeInvalidRequest, "crit header parameters are not supported")
	}
	if h.alg == "" || strings.EqualFold(h.alg, "none") {
		return h, nil, setErr(CodeInvalidRequest, "unsigned SETs (alg none) are not accepted")
	}
	if !allowed(h.alg) {
		return h, nil, setErr(CodeInvalidRequest, "alg %q is not allowed for this transmitter", truncate(h.alg))
	}
	return h, msg.Payload(), nil
}

// isSETType reports whether typ is secevent+jwt, with or without the
// application/ prefix (media types are case-insensitive).
func isSETType(typ string) bool {
	t := strings.ToLower(typ)
	return t == "secevent+jwt" || t == "application/secevent+jwt"
}

// peekIssuer reads iss from an unverified payload to pick the transmitter
// whose keys verify it. Nothing else is trusted before verification.
func peekIssuer(payload []byte) (string, error) {
	var c struct {
		Iss json.RawMessage `json:"iss"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", setErr(CodeInvalidRequest, "SET payload is not a JSON object")
	}
	var iss string
	if len(c.Iss) == 0 || json.Unmarshal(c.Iss, &iss) != nil || iss == "" {
		return "", setErr(CodeInvalidIssuer, "iss is missing or not a string")
	}
	return iss, nil
}

// claims are the SET claims as received; RawMessage fields detect presence.
type claims struct {
	Iss    json.RawMessage `json:"iss"`
	Sub    json.RawMessage `json:"sub"`
	Exp    json.RawMessage `json:"exp"`
	Iat    json.RawMessage `json:"iat"`
	JTI    json.RawMessage `json:"jti"`
	Aud    json.RawMessage `json:"aud"`
	Txn    json.RawMessage `json:"txn"`
	TOE    json.RawMessage `json:"toe"`
	Events json.RawMessage `json:"events"`
	SubID  json.RawMessage `json:"sub_id"`
}

// parseClaims validates the verified payload of a SET: iss equals issuer,
// aud contains audience, iat and jti present, sub and exp absent, exactly
// one event, a valid subject.
func parseClaims(payload []byte, issuer, audience string) (*SET, error) {
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, setErr(CodeInvalidRequest, "SET payload is not a JSON object: %v", err)
	}
	set := &SET{}
	if err := unmarshalString(c.Iss, &set.Issuer); err != nil || set.Issuer != issuer {
		return nil, setErr(CodeInvalidIssuer, "iss %q is not %q", truncate(set.Issuer), issuer)
	}
	aud, err := parseAudience(c.Aud)
	if err != nil {
		return nil, setErr(CodeInvalidAudience, "%v", err)
	}
	found := false
	for _, a := range aud {
		if a == audience {
			found = true
		}
	}
	if !found {
		return nil, setErr(CodeInvalidAudience, "aud does not contain %q", audience)
	}
	set.Audience = aud
	if present(c.Sub) {
		return nil, setErr(CodeInvalidRequest, "sub is forbidden in SETs (use sub_id)")
	}
	if present(c.Exp) {
		return nil, setErr(CodeInvalidRequest, "exp is forbidden in SETs")
	}
	if set.IssuedAt, err = numericDate(c.Iat); err != nil {
		return nil, setErr(CodeInvalidRequest, "iat: %v", err)
	}
	if err := unmarshalString(c.JTI, &set.JTI); err != nil || set.JTI == "" || len(set.JTI) > 256 {
		return nil, setErr(CodeInvalidRequest, "jti must be a string of 1-256 bytes")
	}
	if present(c.Txn) {
		if err := unmarshalString(c.Txn, &set.Txn); err != nil || len(set.Txn) > 256 {
			return nil, setErr(CodeInvalidRequest, "txn must be a string of at most 256 bytes")
		}
	}
	if present(c.TOE) {
		if set.TOE, err = numericDate(c.TOE); err != nil {
			return nil, setErr(CodeInvalidRequest, "toe: %v", err)
		}
	}
	var events map[string]json.RawMessage
	if !present(c.Events) || json.Unmarshal(c.Events, &events) != nil {
		return nil, setErr(CodeInvalidRequest, "events must be an object")
	}
	if len(events) != 1 {
		return nil, setErr(CodeInvalidRequest, "events must hold exactly one event, not %d", len(events))
	}
	for uri, ev := range events {
		set.EventType, set.Event = uri, ev
	}
	if !utf8.ValidString(set.EventType) || len(set.EventType) > 512 {
		return nil, setErr(CodeInvalidRequest, "event type is not a short UTF-8 URI")
	}
	ev := bytes.TrimSpace(set.Event)
	if len(ev) == 0 || ev[0] != '{' {
		return nil, setErr(CodeInvalidRequest, "event %s is not an object", truncate(set.EventType))
	}
	subj := c.SubID
	if !present(subj) {
		// Legacy CAEP/RISC: the subject inside the event.
		var legacy struct {
			Subject json.RawMessage `json:"subject"`
		}
		if json.Unmarshal(ev, &legacy) == nil && present(legacy.Subject) {
			subj = legacy.Subject
		}
	}
	if !present(subj) {
		return nil, setErr(CodeInvalidRequest, "sub_id is required")
	}
	if set.Subject, err = state.ParseSubject(subj); err != nil {
		return nil, setErr(CodeInvalidRequest, "sub_id: %v", err)
	}
	return set, nil
}

func present(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}

func unmarshalString(raw json.RawMessage, dst *string) error {
	if !present(raw) {
		return fmt.Errorf("missing")
	}
	return json.Unmarshal(raw, dst)
}

func parseAudience(raw json.RawMessage) ([]string, error) {
	if !present(raw) {
		return nil, fmt.Errorf("aud is missing")
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil || len(many) == 0 || len(many) > 32 {
		return nil, fmt.Errorf("aud must be a string or an array of 1-32 strings")
	}
	return many, nil
}

// numericDate parses a JWT NumericDate (seconds, possibly fractional).
func numericDate(raw json.RawMessage) (time.Time, error) {
	if !present(raw) {
		return time.Time{}, fmt.Errorf("missing")
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return time.Time{}, fmt.Errorf("not a number")
	}
	if math.IsNaN(f) || f < 0 || f > 7258118400 { // 2200-01-01
		return time.Time{}, fmt.Errorf("out of range")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

func truncate(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
