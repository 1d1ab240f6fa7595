package state

import "time"

// Query is what a request presents to be matched against live state. Every
// field is optional; empty fields match nothing. How subject identifiers
// map onto these fields is documented in the package comment.
type Query struct {
	// Issuer and Subject are the token's iss and sub.
	Issuer  string
	Subject string
	// Email and Phone are the token's email and phone_number claims.
	Email string
	Phone string
	// SessionID is the token's sid claim.
	SessionID string
	// TokenID is the token's jti (looked up together with Issuer).
	TokenID string
	// DeviceID identifies the device the request comes from.
	DeviceID string
	// ClientID is the OAuth client (complex subject member "application").
	ClientID string
	// Tenant is the tenant the token belongs to (e.g. a tid claim).
	Tenant string
	// IssuedAt is the token's iat. Claim overrides apply only to tokens
	// issued before the change; zero means unknown (overrides apply).
	IssuedAt time.Time
}

// Assurance is the latest assurance level recorded for a request.
type Assurance struct {
	Namespace string
	Level     string
	Time      time.Time
}

// RiskFact is the risk recorded for a request: the highest level among the
// matching subjects (user, device, session, tenant), the latest on a tie.
type RiskFact struct {
	// Score is 0-100; when the signal gave none it is derived from the
	// level (LOW 20, MEDIUM 50, HIGH 80).
	Score int
	// Level is LOW, MEDIUM or HIGH; "" when no risk is recorded.
	Level   string
	Reasons []string
	Time    time.Time
}

// Facts is the live state that applies to one request.
type Facts struct {
	// RevokedBefore rejects tokens issued before it (session-revoked,
	// credential-change, credential-compromise, credential-change-required;
	// the newest one wins). Zero when nothing is revoked.
	RevokedBefore time.Time
	RevokedReason string
	// Disabled is set by account-disabled until a later account-enabled;
	// the newest statement among the matching subjects wins.
	Disabled bool
	// Purged is set by account-purged, for ever.
	Purged bool
	// AccountReason explains Disabled or Purged.
	AccountReason string
	// ClaimOverrides are claims changed after the token was issued
	// (token-claims-change); nil when none. Callers must not modify it.
	ClaimOverrides map[string]any
	// Assurance is the latest assurance-level-change, or nil.
	Assurance *Assurance
	// DeviceCompliant is the latest device-compliance-change, or nil.
	DeviceCompliant *bool
	DeviceTime      time.Time
	// Risk is the recorded risk (Level "" when none).
	Risk RiskFact
	// Seq is the journal sequence of the snapshot the facts come from.
	Seq uint64
}

// Guard applies the checks policies cannot override: a purged or disabled
// account, and a token issued before a revocation. A token whose issue time
// is unknown (zero) cannot prove it is newer than a revocation and is
// denied. Tokens issued in the same second as a sub-second revocation time
// are denied too (iat has whole seconds). revokedAt is set only for the
// revocation case, where a fresh token helps (a claims challenge can demand
// one issued at or after it).
func (f Facts) Guard(issuedAt time.Time) (deny bool, reason string, revokedAt time.Time) {
	switch {
	case f.Purged:
		return true, "account purged: " + f.AccountReason, time.Time{}
	case f.Disabled:
		return true, "account disabled: " + f.AccountReason, time.Time{}
	case !f.RevokedBefore.IsZero() && (issuedAt.IsZero() || issuedAt.Before(f.RevokedBefore)):
		return true, "token issued before revocation: " + f.RevokedReason, f.RevokedBefore
	}
	return false, "", time.Time{}
}
