package risk

import (
	"net/netip"
	"time"
)

// Outcome is how a request ended, as far as the detectors care.
type Outcome uint8

// Outcomes.
const (
	// Allowed requests were forwarded.
	Allowed Outcome = iota
	// Denied requests were refused by a policy or a guard (403).
	Denied
	// SteppedUp requests were answered with a step-up challenge (401
	// insufficient_user_authentication).
	SteppedUp
	// Revoked requests carried a token rejected by live state.
	Revoked
	// Unauthenticated requests presented a bearer token that failed
	// verification; they carry no identity.
	Unauthenticated
)

// String returns the outcome's name.
func (o Outcome) String() string {
	switch o {
	case Allowed:
		return "allowed"
	case Denied:
		return "denied"
	case SteppedUp:
		return "stepped_up"
	case Revoked:
		return "revoked"
	case Unauthenticated:
		return "unauthenticated"
	}
	return "unknown"
}

// refused reports whether the outcome counts as a denial for probing
// detection.
func (o Outcome) refused() bool { return o != Allowed }

// Event is one decided request: what the detectors learn from. Every
// string is untrusted input; the engine hashes or bounds what it keeps.
type Event struct {
	// Time is when the request was decided.
	Time    time.Time
	Outcome Outcome
	// Issuer and Subject identify the user (token iss and sub); empty when
	// the request carried no valid token.
	Issuer  string
	Subject string
	// SessionID is the token's sid, TokenID its jti ("" when absent).
	SessionID string
	TokenID   string
	// IP is the client address.
	IP netip.Addr
	// Country is the ISO 3166-1 alpha-2 code of IP ("" when unknown).
	Country string
	// Latitude, Longitude and AccuracyKM locate IP; Located says whether
	// they are known.
	Latitude, Longitude float64
	AccuracyKM          float64
	Located             bool
	// DeviceID is the caller's device ("" when unknown) and UserAgent its
	// User-Agent header.
	DeviceID  string
	UserAgent string
	// Action is the route's action (e.g. "GET /todos/{id}"); ResourceType
	// and ResourceID name the resource it touched.
	Action       string
	ResourceType string
	ResourceID   string
}
