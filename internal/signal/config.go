package signal

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"time"
)

// Config lists the SSF transmitters Vigil receives signals from.
//
//	transmitters:
//	  - name: okta
//	    issuer: https://example.okta.com
//	    configuration_url: https://example.okta.com/.well-known/ssf-configuration
//	    audience: https://vigil.example.com
//	    push: {authorization: "Bearer ${SSF_PUSH_TOKEN}"}
//	  - name: google
//	    issuer: https://accounts.google.com/
//	    jwks_uri: https://www.googleapis.com/oauth2/v3/certs
//	    audience: my-project
//	    poll: {endpoint: https://tx.example/poll, token: "${SSF_POLL_TOKEN}", interval: 5s}
type Config struct {
	Transmitters []TransmitterConfig `yaml:"transmitters"`
}

// TransmitterConfig is one SSF transmitter.
type TransmitterConfig struct {
	// Name identifies the transmitter in logs, metrics and the admin API.
	Name string `yaml:"name"`
	// Issuer must equal the SETs' iss (and the metadata's issuer).
	Issuer string `yaml:"issuer"`
	// JWKSURI is where the transmitter's signing keys are. Set it or
	// ConfigurationURL.
	JWKSURI string `yaml:"jwks_uri"`
	// ConfigurationURL is the transmitter's /.well-known/ssf-configuration;
	// jwks_uri and critical_subject_members are read from it.
	ConfigurationURL string `yaml:"configuration_url"`
	// Audience must be among the SETs' aud.
	Audience string `yaml:"audience"`
	// Algorithms allowed for SET signatures. Default RS256, PS256, ES256,
	// EdDSA. "none" and HMAC algorithms are never allowed.
	Algorithms []string `yaml:"algorithms"`
	// Push enables RFC 8935 push delivery from this transmitter.
	Push *PushConfig `yaml:"push"`
	// Poll enables RFC 8936 poll delivery from this transmitter.
	Poll *PollConfig `yaml:"poll"`
}

// PushConfig configures push delivery.
type PushConfig struct {
	// Authorization is the exact Authorization header value the
	// transmitter sends (the stream's authorization_header). Empty means
	// no header is required; the SET signature still authenticates.
	Authorization string `yaml:"authorization"`
}

// PollConfig configures poll delivery.
type PollConfig struct {
	// Endpoint is the transmitter's poll URL (the stream's endpoint_url).
	Endpoint string `yaml:"endpoint"`
	// Token is sent as "Authorization: Bearer <token>".
	Token string `yaml:"token"`
	// Interval is the pause after an empty response. Default 1s.
	Interval time.Duration `yaml:"interval"`
	// MaxEvents is maxEvents per request. Default 100.
	MaxEvents int `yaml:"max_events"`
	// Timeout bounds one long-poll request. Default 60s.
	Timeout time.Duration `yaml:"timeout"`
}

// DefaultAlgorithms are the SET signature algorithms allowed by default.
func DefaultAlgorithms() []string { return []string{"RS256", "PS256", "ES256", "EdDSA"} }

func supportedAlgorithm(a string) bool {
	switch a {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA":
		return true
	}
	return false
}

// SetDefaults fills unset fields.
func (c *Config) SetDefaults() {
	for i := range c.Transmitters {
		t := &c.Transmitters[i]
		if len(t.Algorithms) == 0 {
			t.Algorithms = DefaultAlgorithms()
		}
		if p := t.Poll; p != nil {
			if p.Interval == 0 {
				p.Interval = time.Second
			}
			if p.MaxEvents == 0 {
				p.MaxEvents = 100
			}
			if p.Timeout == 0 {
				p.Timeout = 60 * time.Second
			}
		}
	}
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Validate reports every problem, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	names := map[string]bool{}
	issuers := map[string]bool{}
	for i, t := range c.Transmitters {
		add := func(key, format string, a ...any) {
			errs = append(errs, fmt.Errorf("transmitters[%d].%s: %s", i, key, fmt.Sprintf(format, a...)))
		}
		if !namePattern.MatchString(t.Name) {
			add("name", "%q must be 1-64 letters, digits, '.', '_' or '-'", t.Name)
		} else if names[t.Name] {
			add("name", "%q is used twice", t.Name)
		}
		names[t.Name] = true
		if t.Issuer == "" {
			add("issuer", "required (it must equal the SETs' iss)")
		} else if issuers[t.Issuer] {
			add("issuer", "%q is used by two transmitters", t.Issuer)
		}
		issuers[t.Issuer] = true
		switch {
		case t.JWKSURI == "" && t.ConfigurationURL == "":
			add("jwks_uri", "set jwks_uri or configuration_url")
		case t.JWKSURI != "" && t.ConfigurationURL != "":
			add("jwks_uri", "set jwks_uri or configuration_url, not both")
		case t.JWKSURI != "":
			if err := checkURL(t.JWKSURI); err != nil {
				add("jwks_uri", "%v", err)
			}
		default:
			if err := checkURL(t.ConfigurationURL); err != nil {
				add("configuration_url", "%v", err)
			}
		}
		if t.Audience == "" {
			add("audience", "required (Vigil's identifier in the SETs' aud)")
		}
		for j, a := range t.Algorithms {
			if !supportedAlgorithm(a) {
				add(fmt.Sprintf("algorithms[%d]", j), "%q is not one of RS256/384/512, PS256/384/512, ES256/384/512, EdDSA", a)
			}
		}
		if slices.Contains(t.Algorithms, "none") {
			add("algorithms", "none is never allowed")
		}
		if t.Push == nil && t.Poll == nil {
			add("push", "configure push or poll (or both)")
		}
		if p := t.Poll; p != nil {
			if err := checkURL(p.Endpoint); err != nil {
				add("poll.endpoint", "%v", err)
			}
			if p.MaxEvents < 1 || p.MaxEvents > 1000 {
				add("poll.max_events", "must be 1-1000")
			}
			if p.Interval < 0 || p.Timeout < time.Second {
				add("poll.timeout", "must be at least 1s (and interval not negative)")
			}
		}
	}
	return errors.Join(errs...)
}

// checkURL accepts https URLs, and http URLs on loopback (tests, sidecars).
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if host == "localhost" {
			return nil
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("%q must use https (http is allowed only on loopback)", raw)
	}
	return fmt.Errorf("%q must use https", raw)
}
