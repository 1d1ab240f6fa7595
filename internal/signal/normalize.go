package signal

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/vigil-authz/vigil/internal/state"
)

// Event type URI bases.
const (
	CAEPBase = "https://schemas.openid.net/secevent/caep/event-type/"
	RISCBase = "https://schemas.openid.net/secevent/risc/event-type/"
	SSFBase  = "https://schemas.openid.net/secevent/ssf/event-type/"
)

// SSF stream management events (not signals about subjects).
const (
	EventVerification  = SSFBase + "verification"
	EventStreamUpdated = SSFBase + "stream-updated"
)

// eventFields are the members CAEP and RISC events may carry.
type eventFields struct {
	EventTimestamp   json.RawMessage `json:"event_timestamp"`
	InitiatingEntity string          `json:"initiating_entity"`
	ReasonAdmin      json.RawMessage `json:"reason_admin"`
	ReasonUser       json.RawMessage `json:"reason_user"`
	Reason           json.RawMessage `json:"reason"` // RISC account-disabled

	Claims json.RawMessage `json:"claims"`

	CredentialType string `json:"credential_type"`
	ChangeType     string `json:"change_type"`

	Namespace     string `json:"namespace"`
	CurrentLevel  string `json:"current_level"`
	PreviousLevel string `json:"previous_level"`

	CurrentStatus  string `json:"current_status"`
	PreviousStatus string `json:"previous_status"`

	Principal  string          `json:"principal"`
	RiskReason json.RawMessage `json:"risk_reason"`

	// SSF stream events.
	State  *string `json:"state"`
	Status string  `json:"status"`
}

// Normalize turns a verified SET into a signal. Events Vigil does not act
// on (unknown types, session-established, credential creation, RISC
// identifier and opt-in events...) come back as KindIgnored; malformed
// events of known types are a *SETError (invalid_request).
func Normalize(set *SET) (state.Signal, error) {
	sig := state.Signal{
		ID:        "ssf:" + set.Issuer + "#" + set.JTI,
		Source:    "ssf:" + set.Issuer,
		EventType: set.EventType,
		Kind:      state.KindIgnored,
		Subject:   set.Subject,
		EventTime: set.IssuedAt,
		Txn:       set.Txn,
	}
	var ev eventFields
	if err := json.Unmarshal(set.Event, &ev); err != nil {
		if !known(set.EventType) {
			return sig, nil // unknown events are not ours to judge
		}
		return sig, setErr(CodeInvalidRequest, "event %s: %v", short(set.EventType), err)
	}
	if present(ev.EventTimestamp) {
		t, err := numericDate(ev.EventTimestamp)
		if err != nil {
			return sig, setErr(CodeInvalidRequest, "event_timestamp: %v", err)
		}
		sig.EventTime = t
	}
	sig.Initiator = ev.InitiatingEntity
	sig.Reason = firstText(ev.ReasonAdmin)
	if sig.Reason == "" {
		sig.Reason = firstText(ev.Reason)
	}
	bad := func(format string, a ...any) (state.Signal, error) {
		return sig, setErr(CodeInvalidRequest, "event %s: "+format, append([]any{short(set.EventType)}, a...)...)
	}
	switch set.EventType {
	case CAEPBase + "session-revoked", RISCBase + "sessions-revoked":
		sig.Kind = state.KindSessionRevoked
	case CAEPBase + "token-claims-change":
		var claims map[string]any
		if json.Unmarshal(ev.Claims, &claims) != nil || len(claims) == 0 {
			return bad("claims must be a non-empty object")
		}
		sig.Kind, sig.Claims = state.KindTokenClaimsChange, claims
	case CAEPBase + "credential-change":
		if ev.CredentialType == "" {
			return bad("credential_type is required")
		}
		sig.CredentialType, sig.ChangeType = ev.CredentialType, ev.ChangeType
		switch ev.ChangeType {
		case "revoke", "update", "delete":
			sig.Kind = state.KindCredentialChange
		case "create":
			// A new credential takes nothing away.
		default:
			return bad("change_type %q is not create, revoke, update or delete", truncate(ev.ChangeType))
		}
	case CAEPBase + "assurance-level-change":
		if ev.Namespace == "" || ev.CurrentLevel == "" {
			return bad("namespace and current_level are required")
		}
		sig.Kind = state.KindAssuranceLevelChange
		sig.Namespace, sig.CurrentLevel, sig.PreviousLevel = ev.Namespace, ev.CurrentLevel, ev.PreviousLevel
	case CAEPBase + "device-compliance-change":
		var compliant bool
		switch ev.CurrentStatus {
		case "compliant":
			compliant = true
		case "not-compliant":
		default:
			return bad("current_status %q is not compliant or not-compliant", truncate(ev.CurrentStatus))
		}
		sig.Kind, sig.Compliant = state.KindDeviceComplianceChange, &compliant
	case CAEPBase + "risk-level-change":
		level := strings.ToUpper(ev.CurrentLevel)
		switch level {
		case state.RiskLow, state.RiskMedium, state.RiskHigh:
		default:
			return bad("current_level %q is not LOW, MEDIUM or HIGH", truncate(ev.CurrentLevel))
		}
		if ev.Principal == "" {
			return bad("principal is required")
		}
		risk := &state.RiskChange{Level: level, Principal: strings.ToUpper(ev.Principal), PreviousLevel: strings.ToUpper(ev.PreviousLevel)}
		if r := firstText(ev.RiskReason); r != "" {
			risk.Reasons = []string{r}
		}
		sig.Kind, sig.Risk = state.KindRiskLevelChange, risk
	case RISCBase + "account-credential-change-required":
		sig.Kind = state.KindCredentialChangeRequired
	case RISCBase + "account-purged":
		sig.Kind = state.KindAccountPurged
	case RISCBase + "account-disabled":
		sig.Kind = state.KindAccountDisabled
	case RISCBase + "account-enabled":
		sig.Kind = state.KindAccountEnabled
	case RISCBase + "credential-compromise":
		if ev.CredentialType == "" {
			return bad("credential_type is required")
		}
		sig.Kind, sig.CredentialType = state.KindCredentialCompromise, ev.CredentialType
	}
	return sig, nil
}

// known reports whether Vigil acts on the event type (so that a malformed
// event of that type is an error rather than ignored).
func known(uri string) bool {
	return slices.Contains([]string{
		CAEPBase + "session-revoked", RISCBase + "sessions-revoked", CAEPBase + "token-claims-change",
		CAEPBase + "credential-change", CAEPBase + "assurance-level-change",
		CAEPBase + "device-compliance-change", CAEPBase + "risk-level-change",
		RISCBase + "account-credential-change-required", RISCBase + "account-purged",
		RISCBase + "account-disabled", RISCBase + "account-enabled", RISCBase + "credential-compromise",
		EventVerification, EventStreamUpdated,
	}, uri)
}

// firstText reads a reason: a plain string, or a language map (CAEP
// reason_admin {"en": "..."}), preferring English, else the first tag in
// sorted order.
func firstText(raw json.RawMessage) string {
	if !present(raw) {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return limitText(s)
	}
	var m map[string]string
	if json.Unmarshal(raw, &m) != nil || len(m) == 0 {
		return ""
	}
	for _, k := range []string{"en", "en-US", "en-GB"} {
		if v, ok := m[k]; ok {
			return limitText(v)
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return limitText(m[keys[0]])
}

func limitText(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > 1024 {
		s = strings.ToValidUTF8(s[:1024], "")
	}
	return s
}

func short(uri string) string {
	for _, b := range []string{CAEPBase, RISCBase, SSFBase} {
		if strings.HasPrefix(uri, b) {
			return uri[len(b):]
		}
	}
	return truncate(uri)
}
