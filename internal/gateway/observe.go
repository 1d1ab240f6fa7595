package gateway

import (
	"errors"
	"net/http"
	"net/netip"
	"time"

	"github.com/vigil-authz/vigil/internal/identity"
)

// Event describes one request the gateway decided, for behaviour analysis
// (Options.Observe feeds Vigil's risk engine). It holds only values the
// gateway already has: building one allocates nothing. Strings are shared
// with the request and the cached token; an observer must not modify them
// and should not keep the whole Event longer than it needs to.
type Event struct {
	// Time is the decision time (the gateway's clock).
	Time time.Time
	// Surface is SurfaceGateway or SurfaceForwardAuth.
	Surface string
	// Outcome is how the request ended: OutcomeAllow, OutcomeDeny,
	// OutcomeStepUp, OutcomeRevoked, or OutcomeUnauthenticated for a
	// presented bearer token that failed verification (then the identity
	// fields are empty).
	Outcome Outcome

	// Identity of the verified token; empty for anonymous requests and
	// refused tokens.
	Issuer    string
	Subject   string
	SessionID string // token "sid"
	TokenID   string // token "jti"
	ClientID  string

	// IP is the client address (X-Forwarded-For from trusted proxies).
	IP netip.Addr
	// Geo is the location of IP when a GeoIP database is configured.
	Geo Geo
	// DeviceID comes from the trusted device header ("" when none).
	DeviceID string
	// UserAgent is the request's User-Agent header, unbounded beyond the
	// listener's header limit.
	UserAgent string

	// Action is the route's Cedar action id, e.g. "GET /todos/{id}".
	Action string
	// ResourceType and ResourceID name the Cedar resource, e.g. "Todo"
	// and "42".
	ResourceType string
	ResourceID   string
}

// ObserveFunc receives one Event per decided request. It runs on the
// request path, after the decision and before the answer is written: it
// must return quickly and never block (hand the event to a bounded queue).
type ObserveFunc func(Event)

// observe reports a decided request to Options.Observe.
func (g *Gateway) observe(r *http.Request, c *call, surface string, outcome Outcome, now time.Time) {
	ev := Event{
		Time:         now,
		Surface:      surface,
		Outcome:      outcome,
		IP:           c.ip,
		Geo:          c.geo,
		DeviceID:     c.deviceID,
		UserAgent:    r.Header.Get("User-Agent"),
		Action:       string(c.match.Action.ID),
		ResourceType: string(c.match.Resource.Type),
		ResourceID:   string(c.match.Resource.ID),
	}
	if t := c.token; t != nil {
		ev.Issuer, ev.Subject, ev.SessionID, ev.TokenID, ev.ClientID = t.Issuer, t.Subject, t.SessionID, t.JTI, t.ClientID
	}
	g.obs(ev)
}

// observeRefused reports a request whose bearer token failed verification:
// no identity, only where it came from. A token that could not be checked
// (issuer unreachable) says nothing about the caller and is not reported.
func (g *Gateway) observeRefused(r *http.Request, in inbound, surface, action string, err error) {
	if ie, ok := errors.AsType[*identity.Error](err); ok && ie.Temporary {
		return
	}
	g.obs(Event{
		Time:      g.now(),
		Surface:   surface,
		Outcome:   OutcomeUnauthenticated,
		IP:        in.ip,
		DeviceID:  in.device,
		UserAgent: r.Header.Get("User-Agent"),
		Action:    action,
	})
}
