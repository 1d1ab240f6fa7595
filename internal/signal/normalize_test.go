package signal

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/vigil-authz/vigil/internal/state"
)

func TestNormalize(t *testing.T) {
	iat := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		uri   string
		event string
		kind  state.Kind
		check func(t *testing.T, s state.Signal)
	}{
		{"CAEP session-revoked revokes, with reason_admin", CAEPBase + "session-revoked", `{"reason_admin":{"de":"x","en":"risk"},"event_timestamp":1767225500}`, state.KindSessionRevoked, func(t *testing.T, s state.Signal) {
			if s.Reason != "risk" || !s.EventTime.Equal(time.Unix(1767225500, 0)) {
				t.Fatalf("reason %q time %v", s.Reason, s.EventTime)
			}
		}},
		{"RISC sessions-revoked is session-revoked", RISCBase + "sessions-revoked", `{}`, state.KindSessionRevoked, nil},
		{"credential-change revoke revokes", CAEPBase + "credential-change", `{"credential_type":"password","change_type":"revoke"}`, state.KindCredentialChange, nil},
		{"credential-change update revokes", CAEPBase + "credential-change", `{"credential_type":"fido2-platform","change_type":"update"}`, state.KindCredentialChange, nil},
		{"credential-change delete revokes", CAEPBase + "credential-change", `{"credential_type":"x509","change_type":"delete"}`, state.KindCredentialChange, nil},
		{"credential-change create is ignored", CAEPBase + "credential-change", `{"credential_type":"app","change_type":"create"}`, state.KindIgnored, nil},
		{"token-claims-change carries claims", CAEPBase + "token-claims-change", `{"claims":{"role":"ro"}}`, state.KindTokenClaimsChange, func(t *testing.T, s state.Signal) {
			if s.Claims["role"] != "ro" {
				t.Fatalf("claims %v", s.Claims)
			}
		}},
		{"assurance-level-change carries levels", CAEPBase + "assurance-level-change", `{"namespace":"NIST-AAL","current_level":"nist-aal2","previous_level":"nist-aal1","change_direction":"increase"}`, state.KindAssuranceLevelChange, func(t *testing.T, s state.Signal) {
			if s.Namespace != "NIST-AAL" || s.CurrentLevel != "nist-aal2" || s.PreviousLevel != "nist-aal1" {
				t.Fatalf("%+v", s)
			}
		}},
		{"device-compliance-change carries the status", CAEPBase + "device-compliance-change", `{"previous_status":"compliant","current_status":"not-compliant"}`, state.KindDeviceComplianceChange, func(t *testing.T, s state.Signal) {
			if s.Compliant == nil || *s.Compliant {
				t.Fatalf("compliant %v", s.Compliant)
			}
		}},
		{"risk-level-change carries level, principal and reason", CAEPBase + "risk-level-change", `{"principal":"USER","current_level":"high","risk_reason":"PASSWORD_FOUND_IN_DATA_BREACH"}`, state.KindRiskLevelChange, func(t *testing.T, s state.Signal) {
			if s.Risk.Level != "HIGH" || s.Risk.Principal != "USER" || len(s.Risk.Reasons) != 1 {
				t.Fatalf("%+v", s.Risk)
			}
		}},
		{"account-credential-change-required revokes", RISCBase + "account-credential-change-required", `{}`, state.KindCredentialChangeRequired, nil},
		{"account-purged purges", RISCBase + "account-purged", `{}`, state.KindAccountPurged, nil},
		{"account-disabled disables with its reason", RISCBase + "account-disabled", `{"reason":"hijacking"}`, state.KindAccountDisabled, func(t *testing.T, s state.Signal) {
			if s.Reason != "hijacking" {
				t.Fatalf("reason %q", s.Reason)
			}
		}},
		{"account-enabled enables", RISCBase + "account-enabled", `{}`, state.KindAccountEnabled, nil},
		{"credential-compromise revokes", RISCBase + "credential-compromise", `{"credential_type":"password"}`, state.KindCredentialCompromise, nil},
		{"identifier-changed is ignored", RISCBase + "identifier-changed", `{"new-value":"b@c"}`, state.KindIgnored, nil},
		{"session-established is ignored", CAEPBase + "session-established", `{"acr":"x"}`, state.KindIgnored, nil},
		{"an unknown event is ignored", "https://example.com/events/whatever", `{"anything":[1,2]}`, state.KindIgnored, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := &SET{Issuer: "https://tx", JTI: "j1", IssuedAt: iat, EventType: tt.uri, Event: json.RawMessage(tt.event),
				Subject: state.Subject{Format: state.FormatEmail, Email: "a@b"}}
			sig, err := Normalize(set)
			if err != nil {
				t.Fatal(err)
			}
			if sig.Kind != tt.kind {
				t.Fatalf("kind %q, want %q", sig.Kind, tt.kind)
			}
			if sig.ID != "ssf:https://tx#j1" || sig.Source != "ssf:https://tx" {
				t.Fatalf("id %q source %q", sig.ID, sig.Source)
			}
			if sig.Kind != state.KindIgnored {
				if err := sig.Validate(); err != nil {
					t.Fatalf("invalid signal: %v", err)
				}
			}
			if tt.check != nil {
				tt.check(t, sig)
			}
		})
	}
	for _, bad := range []struct{ uri, event string }{
		{CAEPBase + "credential-change", `{"credential_type":"password"}`},
		{CAEPBase + "token-claims-change", `{"claims":{}}`},
		{CAEPBase + "device-compliance-change", `{"current_status":"maybe"}`},
		{CAEPBase + "risk-level-change", `{"principal":"USER","current_level":"SEVERE"}`},
		{CAEPBase + "assurance-level-change", `{"namespace":"NIST-AAL"}`},
		{RISCBase + "credential-compromise", `{}`},
		{CAEPBase + "session-revoked", `{"event_timestamp":"yesterday"}`},
	} {
		t.Run("a malformed "+short(bad.uri)+" is invalid_request", func(t *testing.T) {
			_, err := Normalize(&SET{Issuer: "i", JTI: "j", IssuedAt: iat, EventType: bad.uri, Event: json.RawMessage(bad.event)})
			var se *SETError
			if !errors.As(err, &se) || se.Code != CodeInvalidRequest {
				t.Fatalf("err = %v", err)
			}
		})
	}
}
