package risk

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"
)

// Config configures the risk engine (the `risk` section of vigil.yaml).
//
//	risk:
//	  enabled: true
//	  queue_size: 16384
//	  limits: {subjects: 500000, sessions: 500000, tokens: 200000, addresses: 200000, idle_ttl: 24h}
//	  score: {medium: 40, high: 70, fade: 0.5, carry_over: 1h}
//	  publish: {min_interval: 1m, score_delta: 15, rate: 100, timeout: 5s}
//	  detectors:
//	    request_rate: {window: 1m, factor: 8, min_requests: 120, subject_ceiling: 1200}
//	    denied_burst: {threshold: 20, high_threshold: 50, address_threshold: 20}
//	    impossible_travel: {max_speed_kmh: 1000, min_distance_km: 300}
//	    session_hijack: {ipv4_prefix: 24, ipv6_prefix: 48, concurrent_window: 10m}
//	    new_device: {enabled: true, points: 20}
//	    new_country: {enabled: true, points: 30}
//	    enumeration: {window: 1m, threshold: 60, high_threshold: 200}
//	  outbound:
//	    issuer: https://vigil.example.com
//	    receivers:
//	      - {name: idp, endpoint: https://idp.example.com/ssf/push, audience: https://idp.example.com}
//
// docs/risk.md describes every key.
type Config struct {
	// Enabled runs the engine when the gateway runs (default true).
	Enabled *bool `yaml:"enabled"`
	// QueueSize bounds the events waiting for the engine; when full, events
	// are dropped and counted (default 16384).
	QueueSize int `yaml:"queue_size"`
	// Tick is how often fading scores are re-evaluated and idle state is
	// evicted (default 5s).
	Tick time.Duration `yaml:"tick"`
	// Limits bound the engine's memory.
	Limits Limits `yaml:"limits"`
	// Score turns contributions into scores and levels.
	Score Score `yaml:"score"`
	// Publish controls how level changes reach the signal journal.
	Publish Publish `yaml:"publish"`
	// Detectors configures each detector.
	Detectors Detectors `yaml:"detectors"`
	// Outbound sends level changes to other parties as CAEP SETs.
	Outbound Outbound `yaml:"outbound"`
}

// Limits bound the per-key state. When a table is full the least recently
// seen key is evicted; keys idle for IdleTTL are evicted on the next tick.
type Limits struct {
	// Subjects caps tracked users (issuer + sub). Default 500,000.
	Subjects int `yaml:"subjects"`
	// Sessions caps tracked sessions (issuer + sid). Default 500,000.
	Sessions int `yaml:"sessions"`
	// Tokens caps tracked tokens without a session (issuer + jti), watched
	// for hijacking. Default 200,000.
	Tokens int `yaml:"tokens"`
	// Addresses caps client addresses tracked for failed requests.
	// Default 200,000.
	Addresses int `yaml:"addresses"`
	// IdleTTL evicts keys not seen for this long (default 24h). Baselines
	// (request rate, known devices and countries) are forgotten with them.
	IdleTTL time.Duration `yaml:"idle_ttl"`
}

// Score turns contributions into a 0-100 score and a level. Contributions
// combine as 1 − Π(1 − pᵢ/100) (several weak signals add up, none alone
// exceeds its own points, the total never exceeds 100); within one
// detector only the strongest contribution counts.
type Score struct {
	// Medium is the lowest MEDIUM score (default 40).
	Medium int `yaml:"medium"`
	// High is the lowest HIGH score (default 70).
	High int `yaml:"high"`
	// Fade is the share of a contribution's lifetime during which it fades
	// linearly to zero; before that it counts in full. 0 keeps full
	// strength until expiry, 1 fades from the start (default 0.5).
	Fade *float64 `yaml:"fade"`
	// CarryOver is how long a MEDIUM or HIGH level this engine recorded
	// before a restart (read back from live state when a key is first seen
	// again) keeps counting, fading like any contribution (default 1h).
	CarryOver time.Duration `yaml:"carry_over"`
}

// Publish controls how level changes reach the signal journal.
type Publish struct {
	// MinInterval rate-limits score-only updates per subject or session
	// (default 1m). Level changes are never delayed by it.
	MinInterval time.Duration `yaml:"min_interval"`
	// ScoreDelta is the score change, at an unchanged MEDIUM or HIGH level,
	// that is worth publishing (default 15).
	ScoreDelta int `yaml:"score_delta"`
	// Rate caps journal writes per second across all keys (default 100);
	// changes beyond it wait for the next tick.
	Rate float64 `yaml:"rate"`
	// Timeout bounds one journal write (default 5s).
	Timeout time.Duration `yaml:"timeout"`
	// QueueSize bounds changes waiting to be written (default 4096).
	QueueSize int `yaml:"queue_size"`
}

// Detectors configures each detector. Every detector is enabled by
// default; set enabled: false to switch one off.
type Detectors struct {
	RequestRate      RequestRate      `yaml:"request_rate"`
	DeniedBurst      DeniedBurst      `yaml:"denied_burst"`
	ImpossibleTravel ImpossibleTravel `yaml:"impossible_travel"`
	SessionHijack    SessionHijack    `yaml:"session_hijack"`
	NewDevice        NewContext       `yaml:"new_device"`
	NewCountry       NewContext       `yaml:"new_country"`
	Enumeration      Enumeration      `yaml:"enumeration"`
}

// RequestRate flags a subject or session whose requests per window jump
// above its own recent baseline (an exponentially weighted moving average
// of earlier windows), or exceed a hard ceiling.
type RequestRate struct {
	Enabled *bool `yaml:"enabled"`
	// Window is the counting window (default 1m).
	Window time.Duration `yaml:"window"`
	// Alpha is the EWMA weight of the newest window (default 0.2).
	Alpha float64 `yaml:"alpha"`
	// WarmupWindows is how many windows a key must have been seen for
	// before its baseline is trusted (default 10); until then only the
	// ceilings apply.
	WarmupWindows int `yaml:"warmup_windows"`
	// Factor: a window with more than Factor × baseline requests is
	// anomalous (default 8)...
	Factor float64 `yaml:"factor"`
	// MinRequests: ...and only when it has more than MinRequests requests
	// (default 120), so that quiet users may burst.
	MinRequests int `yaml:"min_requests"`
	// Points of an anomaly (default 45).
	Points int `yaml:"points"`
	// SubjectCeiling and SessionCeiling are hard caps on requests per
	// window (defaults 1200 and 600); 0 disables a ceiling.
	SubjectCeiling int `yaml:"subject_ceiling"`
	SessionCeiling int `yaml:"session_ceiling"`
	// CeilingPoints of exceeding a ceiling (default 75).
	CeilingPoints int `yaml:"ceiling_points"`
	// TTL is how long a contribution lasts (default 15m).
	TTL time.Duration `yaml:"ttl"`
}

// DeniedBurst flags probing: many denied requests (403, step-up
// challenges, revoked tokens) by one subject in a sliding window; and
// credential stuffing: a user's request from a client address that
// recently sent many requests with invalid tokens.
type DeniedBurst struct {
	Enabled *bool `yaml:"enabled"`
	// Window is the sliding window (default 1m).
	Window time.Duration `yaml:"window"`
	// Threshold denials per window give Points (defaults 20 and 60).
	Threshold int `yaml:"threshold"`
	Points    int `yaml:"points"`
	// HighThreshold denials give HighPoints (defaults 50 and 85).
	HighThreshold int `yaml:"high_threshold"`
	HighPoints    int `yaml:"high_points"`
	// Addresses tracks requests with invalid tokens per client address
	// (default true): AddressThreshold of them from one address within the
	// window mark the users that then use it with AddressPoints (defaults
	// 20 and 70).
	Addresses        *bool `yaml:"addresses"`
	AddressThreshold int   `yaml:"address_threshold"`
	AddressPoints    int   `yaml:"address_points"`
	// TTL (default 30m).
	TTL time.Duration `yaml:"ttl"`
}

// ImpossibleTravel flags consecutive requests of a subject or session from
// locations too far apart for the time between them. It needs a GeoIP
// database with coordinates (gateway.geoip, City layout).
type ImpossibleTravel struct {
	Enabled *bool `yaml:"enabled"`
	// MaxSpeedKMH is the fastest plausible travel (default 1000 km/h).
	MaxSpeedKMH float64 `yaml:"max_speed_kmh"`
	// MinDistanceKM ignores shorter jumps, measured after subtracting both
	// locations' accuracy radii (default 300 km).
	MinDistanceKM float64 `yaml:"min_distance_km"`
	// Points (default 80).
	Points int `yaml:"points"`
	// TTL (default 1h).
	TTL time.Duration `yaml:"ttl"`
}

// SessionHijack flags a session (or a token without a session) that shows
// up from a new network and a new user agent or device at once, or from
// two countries within ConcurrentWindow.
type SessionHijack struct {
	Enabled *bool `yaml:"enabled"`
	// IPv4Prefix and IPv6Prefix group addresses into networks (defaults 24
	// and 48): a new address in a known network is not new.
	IPv4Prefix int `yaml:"ipv4_prefix"`
	IPv6Prefix int `yaml:"ipv6_prefix"`
	// Points of a new network with a new user agent or device (default 70).
	Points int `yaml:"points"`
	// ConcurrentWindow: two countries within it give CountryPoints
	// (defaults 10m and 80).
	ConcurrentWindow time.Duration `yaml:"concurrent_window"`
	CountryPoints    int           `yaml:"country_points"`
	// TTL (default 1h).
	TTL time.Duration `yaml:"ttl"`
}

// NewContext flags a subject seen with a device id (new_device) or from a
// country (new_country) it has not used before. The last 8 of each are
// remembered per subject.
type NewContext struct {
	Enabled *bool `yaml:"enabled"`
	// Points (defaults: new_device 20, new_country 30).
	Points int `yaml:"points"`
	// LearnFor is how long after a subject is first seen its devices and
	// countries are learnt without flagging (default 1h).
	LearnFor time.Duration `yaml:"learn_for"`
	// TTL (default 2h).
	TTL time.Duration `yaml:"ttl"`
}

// Enumeration flags a subject that touches many distinct resources (type
// and id from the route) in a short window: scraping, IDOR probing.
type Enumeration struct {
	Enabled *bool `yaml:"enabled"`
	// Window is the counting window (default 1m).
	Window time.Duration `yaml:"window"`
	// Threshold distinct resources give Points (defaults 60 and 60).
	Threshold int `yaml:"threshold"`
	Points    int `yaml:"points"`
	// HighThreshold distinct resources give HighPoints (defaults 200 and
	// 85). At most 1000: the count is estimated (linear counting over 256
	// bits, a few per cent off) to keep state small.
	HighThreshold int `yaml:"high_threshold"`
	HighPoints    int `yaml:"high_points"`
	// TTL (default 30m).
	TTL time.Duration `yaml:"ttl"`
}

// Outbound sends level changes as signed CAEP risk-level-change SETs by
// RFC 8935 push. Nothing is sent without receivers.
type Outbound struct {
	// Issuer is the SETs' "iss" (required with receivers), e.g. the URL
	// under which Vigil serves /.well-known/vigil-risk-jwks.json.
	Issuer string `yaml:"issuer"`
	// SigningKey is a PEM file with an RSA (2048 bits or more) or P-256
	// private key (PKCS#8, PKCS#1 or SEC 1). When empty, a key is generated
	// and kept under data_dir.
	SigningKey string `yaml:"signing_key"`
	// Algorithm is RS256 (default; the SSF interoperability profile's) or
	// ES256. It must match the key.
	Algorithm string `yaml:"algorithm"`
	// Receivers get every level change.
	Receivers []Receiver `yaml:"receivers"`
	// QueueSize bounds the SETs waiting per receiver (default 1024); when
	// full, new ones are dropped and counted.
	QueueSize int `yaml:"queue_size"`
	// MaxAttempts per SET (default 8), with exponential backoff from
	// InitialBackoff (default 1s) up to MaxBackoff (default 5m).
	MaxAttempts    int           `yaml:"max_attempts"`
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	MaxBackoff     time.Duration `yaml:"max_backoff"`
	// Timeout bounds one delivery attempt (default 10s).
	Timeout time.Duration `yaml:"timeout"`
}

// Receiver is one SET push receiver.
type Receiver struct {
	// Name labels logs and metrics.
	Name string `yaml:"name"`
	// Endpoint is the receiver's push URL: https, or http on a loopback
	// address.
	Endpoint string `yaml:"endpoint"`
	// Audience is the SETs' "aud" (default: the endpoint's origin).
	Audience string `yaml:"audience"`
	// AuthorizationHeader is sent as Authorization, e.g. "Bearer …".
	AuthorizationHeader string `yaml:"authorization_header"`
}

// Defaults.
const (
	DefaultQueueSize = 16384
	DefaultTick      = 5 * time.Second
)

func setInt(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

func setDur(p *time.Duration, v time.Duration) {
	if *p == 0 {
		*p = v
	}
}

func setFloat(p *float64, v float64) {
	if *p == 0 {
		*p = v
	}
}

// SetDefaults fills unset fields.
func (c *Config) SetDefaults() {
	setInt(&c.QueueSize, DefaultQueueSize)
	setDur(&c.Tick, DefaultTick)
	l := &c.Limits
	setInt(&l.Subjects, 250_000)
	setInt(&l.Sessions, 250_000)
	setInt(&l.Tokens, 100_000)
	setInt(&l.Addresses, 100_000)
	setDur(&l.IdleTTL, 24*time.Hour)
	s := &c.Score
	setInt(&s.Medium, 40)
	setInt(&s.High, 70)
	if s.Fade == nil {
		f := 0.5
		s.Fade = &f
	}
	setDur(&s.CarryOver, time.Hour)
	p := &c.Publish
	setDur(&p.MinInterval, time.Minute)
	setInt(&p.ScoreDelta, 15)
	setFloat(&p.Rate, 100)
	setDur(&p.Timeout, 5*time.Second)
	setInt(&p.QueueSize, 4096)

	d := &c.Detectors
	r := &d.RequestRate
	setDur(&r.Window, time.Minute)
	setFloat(&r.Alpha, 0.2)
	setInt(&r.WarmupWindows, 10)
	setFloat(&r.Factor, 8)
	setInt(&r.MinRequests, 120)
	setInt(&r.Points, 45)
	setInt(&r.SubjectCeiling, 1200)
	setInt(&r.SessionCeiling, 600)
	setInt(&r.CeilingPoints, 75)
	setDur(&r.TTL, 15*time.Minute)
	db := &d.DeniedBurst
	setDur(&db.Window, time.Minute)
	setInt(&db.Threshold, 20)
	setInt(&db.Points, 60)
	setInt(&db.HighThreshold, 50)
	setInt(&db.HighPoints, 85)
	setInt(&db.AddressThreshold, 20)
	setInt(&db.AddressPoints, 70)
	setDur(&db.TTL, 30*time.Minute)
	it := &d.ImpossibleTravel
	setFloat(&it.MaxSpeedKMH, 1000)
	setFloat(&it.MinDistanceKM, 300)
	setInt(&it.Points, 80)
	setDur(&it.TTL, time.Hour)
	sh := &d.SessionHijack
	setInt(&sh.IPv4Prefix, 24)
	setInt(&sh.IPv6Prefix, 48)
	setInt(&sh.Points, 70)
	setDur(&sh.ConcurrentWindow, 10*time.Minute)
	setInt(&sh.CountryPoints, 80)
	setDur(&sh.TTL, time.Hour)
	nd := &d.NewDevice
	setInt(&nd.Points, 20)
	setDur(&nd.LearnFor, time.Hour)
	setDur(&nd.TTL, 2*time.Hour)
	nc := &d.NewCountry
	setInt(&nc.Points, 30)
	setDur(&nc.LearnFor, time.Hour)
	setDur(&nc.TTL, 2*time.Hour)
	en := &d.Enumeration
	setDur(&en.Window, time.Minute)
	setInt(&en.Threshold, 60)
	setInt(&en.Points, 60)
	setInt(&en.HighThreshold, 200)
	setInt(&en.HighPoints, 85)
	setDur(&en.TTL, 30*time.Minute)

	o := &c.Outbound
	if o.Algorithm == "" {
		o.Algorithm = "RS256"
	}
	setInt(&o.QueueSize, 1024)
	setInt(&o.MaxAttempts, 8)
	setDur(&o.InitialBackoff, time.Second)
	setDur(&o.MaxBackoff, 5*time.Minute)
	setDur(&o.Timeout, 10*time.Second)
}

// IsEnabled reports whether the engine runs.
func (c *Config) IsEnabled() bool { return c.Enabled == nil || *c.Enabled }

// on reports whether a detector switch is on (default true).
func on(b *bool) bool { return b == nil || *b }

// Upper bounds that keep a configuration from exhausting memory or time.
const (
	maxTableSize = 50_000_000
	maxQueue     = 1 << 22
	maxTTL       = 30 * 24 * time.Hour
	maxWindow    = 24 * time.Hour
	maxReceivers = 32
)

// Validate reports every configuration error, each naming its key (relative
// to the risk section). Call SetDefaults first.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	intIn := func(key string, v, lo, hi int) {
		if v < lo || v > hi {
			bad(key, "must be between %d and %d, got %d", lo, hi, v)
		}
	}
	points := func(key string, v int) { intIn(key, v, 0, 100) }
	durIn := func(key string, d, lo, hi time.Duration) {
		if d < lo || d > hi {
			bad(key, "must be between %s and %s, got %s", lo, hi, d)
		}
	}
	window := func(key string, d time.Duration) {
		durIn(key, d, time.Second, maxWindow)
		if d%time.Second != 0 {
			bad(key, "must be a whole number of seconds, got %s", d)
		}
	}
	ttl := func(key string, d time.Duration) { durIn(key, d, time.Second, maxTTL) }

	intIn("queue_size", c.QueueSize, 1, maxQueue)
	durIn("tick", c.Tick, 100*time.Millisecond, time.Hour)
	intIn("limits.subjects", c.Limits.Subjects, 1, maxTableSize)
	intIn("limits.sessions", c.Limits.Sessions, 1, maxTableSize)
	intIn("limits.tokens", c.Limits.Tokens, 1, maxTableSize)
	intIn("limits.addresses", c.Limits.Addresses, 1, maxTableSize)
	durIn("limits.idle_ttl", c.Limits.IdleTTL, time.Minute, 365*24*time.Hour)

	s := c.Score
	intIn("score.medium", s.Medium, 1, 100)
	intIn("score.high", s.High, 1, 100)
	if s.Medium >= s.High {
		bad("score.high", "must be above score.medium (%d), got %d", s.Medium, s.High)
	}
	if s.Fade != nil && (math.IsNaN(*s.Fade) || *s.Fade < 0 || *s.Fade > 1) {
		bad("score.fade", "must be between 0 and 1, got %v", *s.Fade)
	}
	ttl("score.carry_over", s.CarryOver)

	p := c.Publish
	durIn("publish.min_interval", p.MinInterval, 0, 24*time.Hour)
	points("publish.score_delta", p.ScoreDelta)
	if math.IsNaN(p.Rate) || p.Rate <= 0 || p.Rate > 100_000 {
		bad("publish.rate", "must be above 0 and at most 100000 per second, got %v", p.Rate)
	}
	durIn("publish.timeout", p.Timeout, 10*time.Millisecond, 5*time.Minute)
	intIn("publish.queue_size", p.QueueSize, 1, maxQueue)

	d := c.Detectors
	r := d.RequestRate
	window("detectors.request_rate.window", r.Window)
	if math.IsNaN(r.Alpha) || r.Alpha <= 0 || r.Alpha > 1 {
		bad("detectors.request_rate.alpha", "must be above 0 and at most 1, got %v", r.Alpha)
	}
	intIn("detectors.request_rate.warmup_windows", r.WarmupWindows, 1, 10_000)
	if math.IsNaN(r.Factor) || r.Factor < 1 || r.Factor > 1000 {
		bad("detectors.request_rate.factor", "must be between 1 and 1000, got %v", r.Factor)
	}
	intIn("detectors.request_rate.min_requests", r.MinRequests, 1, 1<<30)
	points("detectors.request_rate.points", r.Points)
	intIn("detectors.request_rate.subject_ceiling", r.SubjectCeiling, 0, 1<<30)
	intIn("detectors.request_rate.session_ceiling", r.SessionCeiling, 0, 1<<30)
	points("detectors.request_rate.ceiling_points", r.CeilingPoints)
	ttl("detectors.request_rate.ttl", r.TTL)

	db := d.DeniedBurst
	window("detectors.denied_burst.window", db.Window)
	intIn("detectors.denied_burst.threshold", db.Threshold, 1, 65535)
	points("detectors.denied_burst.points", db.Points)
	intIn("detectors.denied_burst.high_threshold", db.HighThreshold, 1, 65535)
	if db.HighThreshold < db.Threshold {
		bad("detectors.denied_burst.high_threshold", "must be at least threshold (%d), got %d", db.Threshold, db.HighThreshold)
	}
	points("detectors.denied_burst.high_points", db.HighPoints)
	intIn("detectors.denied_burst.address_threshold", db.AddressThreshold, 1, 65535)
	points("detectors.denied_burst.address_points", db.AddressPoints)
	ttl("detectors.denied_burst.ttl", db.TTL)

	it := d.ImpossibleTravel
	if math.IsNaN(it.MaxSpeedKMH) || it.MaxSpeedKMH < 1 || it.MaxSpeedKMH > 100_000 {
		bad("detectors.impossible_travel.max_speed_kmh", "must be between 1 and 100000, got %v", it.MaxSpeedKMH)
	}
	if math.IsNaN(it.MinDistanceKM) || it.MinDistanceKM < 0 || it.MinDistanceKM > 20_000 {
		bad("detectors.impossible_travel.min_distance_km", "must be between 0 and 20000, got %v", it.MinDistanceKM)
	}
	points("detectors.impossible_travel.points", it.Points)
	ttl("detectors.impossible_travel.ttl", it.TTL)

	sh := d.SessionHijack
	intIn("detectors.session_hijack.ipv4_prefix", sh.IPv4Prefix, 1, 32)
	intIn("detectors.session_hijack.ipv6_prefix", sh.IPv6Prefix, 1, 128)
	points("detectors.session_hijack.points", sh.Points)
	durIn("detectors.session_hijack.concurrent_window", sh.ConcurrentWindow, time.Second, maxWindow)
	points("detectors.session_hijack.country_points", sh.CountryPoints)
	ttl("detectors.session_hijack.ttl", sh.TTL)

	for _, nc := range []struct {
		key string
		c   NewContext
	}{{"detectors.new_device", d.NewDevice}, {"detectors.new_country", d.NewCountry}} {
		points(nc.key+".points", nc.c.Points)
		durIn(nc.key+".learn_for", nc.c.LearnFor, 0, maxTTL)
		ttl(nc.key+".ttl", nc.c.TTL)
	}

	en := d.Enumeration
	window("detectors.enumeration.window", en.Window)
	intIn("detectors.enumeration.threshold", en.Threshold, 2, maxEnumeration)
	points("detectors.enumeration.points", en.Points)
	intIn("detectors.enumeration.high_threshold", en.HighThreshold, 2, maxEnumeration)
	if en.HighThreshold < en.Threshold {
		bad("detectors.enumeration.high_threshold", "must be at least threshold (%d), got %d", en.Threshold, en.HighThreshold)
	}
	points("detectors.enumeration.high_points", en.HighPoints)
	ttl("detectors.enumeration.ttl", en.TTL)

	errs = append(errs, c.Outbound.validate()...)
	return errors.Join(errs...)
}

func (o *Outbound) validate() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("outbound.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	switch o.Algorithm {
	case "RS256", "ES256":
	default:
		bad("algorithm", "%q is not RS256 or ES256", o.Algorithm)
	}
	if len(o.Receivers) > maxReceivers {
		bad("receivers", "at most %d receivers, got %d", maxReceivers, len(o.Receivers))
	}
	if len(o.Receivers) > 0 && o.Issuer == "" {
		bad("issuer", "required when receivers are configured (the SETs' iss)")
	}
	if o.Issuer != "" && (len(o.Issuer) > 1024 || !printable(o.Issuer)) {
		bad("issuer", "must be at most 1024 printable characters")
	}
	if o.QueueSize < 1 || o.QueueSize > maxQueue {
		bad("queue_size", "must be between 1 and %d, got %d", maxQueue, o.QueueSize)
	}
	if o.MaxAttempts < 1 || o.MaxAttempts > 100 {
		bad("max_attempts", "must be between 1 and 100, got %d", o.MaxAttempts)
	}
	if o.InitialBackoff <= 0 || o.MaxBackoff < o.InitialBackoff || o.MaxBackoff > 24*time.Hour {
		bad("max_backoff", "backoff must satisfy 0 < initial_backoff (%s) <= max_backoff (%s) <= 24h", o.InitialBackoff, o.MaxBackoff)
	}
	if o.Timeout <= 0 || o.Timeout > 5*time.Minute {
		bad("timeout", "must be above 0 and at most 5m, got %s", o.Timeout)
	}
	names := map[string]int{}
	for i, r := range o.Receivers {
		key := fmt.Sprintf("receivers[%d]", i)
		if r.Name == "" || len(r.Name) > 64 || !printable(r.Name) {
			bad(key+".name", "must be 1-64 printable characters")
		} else if j, dup := names[r.Name]; dup {
			bad(key+".name", "%q is already used by receivers[%d]", r.Name, j)
		} else {
			names[r.Name] = i
		}
		if _, err := pushURL(r.Endpoint); err != nil {
			bad(key+".endpoint", "%v", err)
		}
		if r.Audience != "" && (len(r.Audience) > 1024 || !printable(r.Audience)) {
			bad(key+".audience", "must be at most 1024 printable characters")
		}
		if len(r.AuthorizationHeader) > 8192 || !printable(r.AuthorizationHeader) {
			bad(key+".authorization_header", "must be at most 8192 printable characters")
		}
	}
	return errs
}

// pushURL parses a receiver endpoint: https, or http to a loopback host
// (tests, sidecars).
func pushURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return nil, fmt.Errorf("%q is not an absolute URL without credentials or fragment", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		h := u.Hostname()
		if h != "localhost" && !strings.HasPrefix(h, "127.") && h != "::1" {
			return nil, fmt.Errorf("%q must use https (http only on loopback)", s)
		}
	default:
		return nil, fmt.Errorf("%q must use https", s)
	}
	return u, nil
}

// printable reports whether s is visible ASCII or space (safe in a header).
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}
