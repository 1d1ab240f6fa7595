package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind is the normalised meaning of a signal, independent of the standard
// (CAEP, RISC) or source (admin, risk detector) it came from.
type Kind string

// Kinds. Every kind but KindIgnored is journalled.
const (
	// KindSessionRevoked rejects tokens of the subject issued before the
	// event (CAEP session-revoked, RISC sessions-revoked).
	KindSessionRevoked Kind = "session-revoked"
	// KindCredentialChange rejects tokens issued before the event (CAEP
	// credential-change with change_type revoke, update or delete).
	KindCredentialChange Kind = "credential-change"
	// KindCredentialCompromise rejects tokens issued before the event
	// (RISC credential-compromise).
	KindCredentialCompromise Kind = "credential-compromise"
	// KindCredentialChangeRequired rejects tokens issued before the event
	// (RISC account-credential-change-required).
	KindCredentialChangeRequired Kind = "credential-change-required"
	// KindAccountDisabled denies every request of the subject until a later
	// KindAccountEnabled (RISC account-disabled).
	KindAccountDisabled Kind = "account-disabled"
	// KindAccountEnabled lifts KindAccountDisabled (RISC account-enabled).
	KindAccountEnabled Kind = "account-enabled"
	// KindAccountPurged denies every request of the subject for ever
	// (RISC account-purged).
	KindAccountPurged Kind = "account-purged"
	// KindTokenClaimsChange overrides claims of tokens issued before the
	// event (CAEP token-claims-change).
	KindTokenClaimsChange Kind = "token-claims-change"
	// KindAssuranceLevelChange records the subject's current assurance
	// level (CAEP assurance-level-change).
	KindAssuranceLevelChange Kind = "assurance-level-change"
	// KindDeviceComplianceChange records whether the device is compliant
	// (CAEP device-compliance-change).
	KindDeviceComplianceChange Kind = "device-compliance-change"
	// KindRiskLevelChange records the subject's risk (CAEP
	// risk-level-change, Vigil's risk detectors).
	KindRiskLevelChange Kind = "risk-level-change"
	// KindIgnored marks an event Vigil understands or tolerates but does not
	// act on. Such signals are never journalled.
	KindIgnored Kind = "ignored"
)

// Kinds returns every journalled kind.
func Kinds() []Kind {
	return []Kind{
		KindSessionRevoked, KindCredentialChange, KindCredentialCompromise,
		KindCredentialChangeRequired, KindAccountDisabled, KindAccountEnabled,
		KindAccountPurged, KindTokenClaimsChange, KindAssuranceLevelChange,
		KindDeviceComplianceChange, KindRiskLevelChange,
	}
}

// Valid reports whether k is a journalled kind.
func (k Kind) Valid() bool {
	switch k {
	case KindSessionRevoked, KindCredentialChange, KindCredentialCompromise,
		KindCredentialChangeRequired, KindAccountDisabled, KindAccountEnabled,
		KindAccountPurged, KindTokenClaimsChange, KindAssuranceLevelChange,
		KindDeviceComplianceChange, KindRiskLevelChange:
		return true
	}
	return false
}

// revokes reports whether the kind rejects earlier-issued tokens.
func (k Kind) revokes() bool {
	switch k {
	case KindSessionRevoked, KindCredentialChange, KindCredentialCompromise, KindCredentialChangeRequired:
		return true
	}
	return false
}

// Stateful reports whether the kind sets a state that lasts until a later
// signal replaces it (account disabled/enabled/purged, device compliance,
// risk). Such records stay in the journal while they are current; the
// others matter only to tokens issued before them and expire after the
// retention.
func (k Kind) Stateful() bool {
	switch k {
	case KindAccountDisabled, KindAccountEnabled, KindAccountPurged, KindDeviceComplianceChange, KindRiskLevelChange:
		return true
	}
	return false
}

// SourceRisk is the Source of signals from Vigil's own risk engine. Their
// risk is kept apart from the risk other sources report: each source class
// replaces only its own level, and decisions see the highest.
const SourceRisk = "risk"

// Risk levels (CAEP risk-level-change).
const (
	RiskLow    = "LOW"
	RiskMedium = "MEDIUM"
	RiskHigh   = "HIGH"
)

func riskRank(level string) int {
	switch level {
	case RiskLow:
		return 1
	case RiskMedium:
		return 2
	case RiskHigh:
		return 3
	}
	return 0
}

// defaultScore is the score recorded for a risk signal without one.
func defaultScore(level string) int {
	switch level {
	case RiskLow:
		return 20
	case RiskMedium:
		return 50
	case RiskHigh:
		return 80
	}
	return 0
}

// RiskChange is the payload of a risk-level-change signal.
type RiskChange struct {
	// Level is LOW, MEDIUM or HIGH.
	Level string `json:"level"`
	// Score is 0-100; nil when the source gives none (then LOW=20,
	// MEDIUM=50, HIGH=80 are recorded).
	Score *int `json:"score,omitempty"`
	// Reasons explain the level (CAEP risk_reason, detector names).
	Reasons []string `json:"reasons,omitempty"`
	// Principal is what the risk is about: USER, DEVICE, SESSION, TENANT...
	Principal string `json:"principal,omitempty"`
	// PreviousLevel is the level before the change, if known.
	PreviousLevel string `json:"previous_level,omitempty"`
}

// Signal is a normalised security signal. It is the journal record: it is
// serialised as JSON, appended to the journal and applied by every replica.
type Signal struct {
	// ID identifies the signal for deduplication: for a SET "ssf:<iss>#<jti>".
	ID string `json:"id"`
	// Source is "ssf:<transmitter issuer>", "admin" or "risk".
	Source string `json:"source"`
	// EventType is the full event type URI, or a Vigil name for signals
	// that did not come from a SET.
	EventType string `json:"event_type,omitempty"`
	Kind      Kind   `json:"kind"`
	// Subject is what the signal is about.
	Subject Subject `json:"subject"`
	// EventTime is when the event happened (event_timestamp, else the SET's
	// iat). Times later than Received are clamped to Received.
	EventTime time.Time `json:"event_time"`
	// Received is when Vigil accepted the signal; set by Publish if zero.
	Received time.Time `json:"received"`
	// Reason is human-readable text (admin reason, reason_admin).
	Reason string `json:"reason,omitempty"`
	// Initiator is CAEP initiating_entity (admin, user, policy, system).
	Initiator string `json:"initiator,omitempty"`
	// Txn links signals from one root cause (SET txn).
	Txn string `json:"txn,omitempty"`

	// CredentialType and ChangeType describe credential-change and
	// credential-compromise.
	CredentialType string `json:"credential_type,omitempty"`
	ChangeType     string `json:"change_type,omitempty"`
	// Claims are the changed claims of token-claims-change.
	Claims map[string]any `json:"claims,omitempty"`
	// Namespace, CurrentLevel and PreviousLevel describe
	// assurance-level-change.
	Namespace     string `json:"namespace,omitempty"`
	CurrentLevel  string `json:"current_level,omitempty"`
	PreviousLevel string `json:"previous_level,omitempty"`
	// Compliant is the new status of device-compliance-change.
	Compliant *bool `json:"compliant,omitempty"`
	// Risk is the payload of risk-level-change.
	Risk *RiskChange `json:"risk,omitempty"`
}

// ErrInvalid is wrapped by errors for signals that can never be accepted.
var ErrInvalid = errors.New("invalid signal")

// Limits on a journalled signal.
const (
	maxSignalIDLen = 1024
	maxTextLen     = 4096
	maxClaimsSize  = 32 << 10
	maxReasons     = 32
)

// Validate reports whether the signal can be journalled.
func (s *Signal) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	if s.ID == "" || len(s.ID) > maxSignalIDLen || !utf8.ValidString(s.ID) {
		return bad("id must be 1-%d bytes of UTF-8", maxSignalIDLen)
	}
	if !s.Kind.Valid() {
		return bad("kind %q is not journalled", truncate(string(s.Kind)))
	}
	if s.EventTime.IsZero() {
		return bad("event_time is missing")
	}
	for _, f := range [...]struct{ name, v string }{
		{"source", s.Source}, {"event_type", s.EventType}, {"reason", s.Reason},
		{"initiator", s.Initiator}, {"txn", s.Txn}, {"credential_type", s.CredentialType},
		{"change_type", s.ChangeType}, {"namespace", s.Namespace},
		{"current_level", s.CurrentLevel}, {"previous_level", s.PreviousLevel},
	} {
		if len(f.v) > maxTextLen || !utf8.ValidString(f.v) {
			return bad("%s must be at most %d bytes of UTF-8", f.name, maxTextLen)
		}
	}
	if err := s.Subject.Validate(); err != nil {
		return fmt.Errorf("%w: subject: %w", ErrInvalid, err)
	}
	switch s.Kind {
	case KindCredentialChange:
		if s.ChangeType == "create" {
			return bad("credential-change with change_type create revokes nothing")
		}
	case KindTokenClaimsChange:
		if len(s.Claims) == 0 {
			return bad("token-claims-change needs claims")
		}
		b, err := json.Marshal(s.Claims)
		if err != nil {
			return bad("claims: %v", err)
		}
		if len(b) > maxClaimsSize {
			return bad("claims larger than %d bytes", maxClaimsSize)
		}
	case KindAssuranceLevelChange:
		if s.Namespace == "" || s.CurrentLevel == "" {
			return bad("assurance-level-change needs namespace and current_level")
		}
	case KindDeviceComplianceChange:
		if s.Compliant == nil {
			return bad("device-compliance-change needs compliant")
		}
	case KindRiskLevelChange:
		if s.Risk == nil || riskRank(s.Risk.Level) == 0 {
			return bad("risk-level-change needs level LOW, MEDIUM or HIGH")
		}
		if s.Risk.Score != nil && (*s.Risk.Score < 0 || *s.Risk.Score > 100) {
			return bad("risk score must be 0-100")
		}
		if len(s.Risk.Reasons) > maxReasons {
			return bad("more than %d risk reasons", maxReasons)
		}
		for _, r := range s.Risk.Reasons {
			if len(r) > maxTextLen || !utf8.ValidString(r) {
				return bad("risk reason must be at most %d bytes of UTF-8", maxTextLen)
			}
		}
	}
	return nil
}

// describe is the reason shown when a revocation or account state denies.
func (s *Signal) describe() string {
	var b strings.Builder
	b.WriteString(string(s.Kind))
	switch {
	case s.Kind == KindCredentialChange || s.Kind == KindCredentialCompromise:
		if s.CredentialType != "" || s.ChangeType != "" {
			b.WriteString(" (")
			b.WriteString(strings.TrimSpace(s.CredentialType + " " + s.ChangeType))
			b.WriteString(")")
		}
	}
	if s.Reason != "" {
		b.WriteString(": ")
		b.WriteString(s.Reason)
	}
	if s.Source != "" {
		b.WriteString(" [")
		b.WriteString(s.Source)
		b.WriteString("]")
	}
	return b.String()
}
