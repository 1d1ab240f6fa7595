package authzen

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Default limits. They bound the work one request can cause.
const (
	DefaultMaxBodyBytes    = 1 << 20
	DefaultMaxDepth        = 32
	DefaultMaxEvaluations  = 1000
	DefaultPageSize        = 100
	DefaultMaxPageSize     = 1000
	DefaultMaxSearchScan   = 10_000
	maxConfigurableDepth   = 512
	maxConfigurableBody    = 64 << 20
	maxConfigurableBatch   = 100_000
	maxConfigurableScanned = 10_000_000
)

// Limits bound the size of requests and the work one request may cause. A
// zero field takes its default.
type Limits struct {
	// MaxBodyBytes is the largest request body accepted; larger bodies are
	// answered 413 (default 1 MiB).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxDepth is the deepest JSON nesting accepted, counting the top-level
	// object as 1 (default 32).
	MaxDepth int `yaml:"max_depth"`
	// MaxEvaluations is the largest evaluations array of one batch
	// (default 1000).
	MaxEvaluations int `yaml:"max_evaluations"`
	// DefaultPageSize is the search page size when the request sets none
	// (default 100).
	DefaultPageSize int `yaml:"default_page_size"`
	// MaxPageSize caps page.limit; larger limits are lowered to it
	// (default 1000).
	MaxPageSize int `yaml:"max_page_size"`
	// MaxSearchScan is how many candidates one search request evaluates at
	// most before it returns a (possibly short) page with a next_token
	// (default 10000).
	MaxSearchScan int `yaml:"max_search_scan"`
}

// SetDefaults fills zero fields with their defaults.
func (l *Limits) SetDefaults() {
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if l.MaxDepth == 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxEvaluations == 0 {
		l.MaxEvaluations = DefaultMaxEvaluations
	}
	if l.MaxPageSize == 0 {
		l.MaxPageSize = DefaultMaxPageSize
	}
	if l.DefaultPageSize == 0 {
		l.DefaultPageSize = min(DefaultPageSize, l.MaxPageSize)
	}
	if l.MaxSearchScan == 0 {
		l.MaxSearchScan = DefaultMaxSearchScan
	}
}

// Validate reports the first limit out of range. Keys are named relative to
// the limits section, e.g. "limits.max_depth".
func (l *Limits) Validate() error {
	var errs []error
	check := func(key string, v, lo, hi int64) {
		if v < lo || v > hi {
			errs = append(errs, fmt.Errorf("limits.%s: %d is out of range; use a value from %d to %d", key, v, lo, hi))
		}
	}
	check("max_body_bytes", l.MaxBodyBytes, 1024, maxConfigurableBody)
	check("max_depth", int64(l.MaxDepth), 4, maxConfigurableDepth)
	check("max_evaluations", int64(l.MaxEvaluations), 1, maxConfigurableBatch)
	check("max_page_size", int64(l.MaxPageSize), 1, maxConfigurableBatch)
	check("default_page_size", int64(l.DefaultPageSize), 1, int64(max(l.MaxPageSize, 1)))
	check("max_search_scan", int64(l.MaxSearchScan), 1, maxConfigurableScanned)
	return errors.Join(errs...)
}

// Config is the authzen section of vigil.yaml.
type Config struct {
	// Issuer is the PDP identifier published as policy_decision_point and
	// the base of every endpoint URL in the metadata document, e.g.
	// "https://pdp.example.com" or "https://pdp.example.com/tenant1". When
	// empty, the metadata is derived from each request's Host (fine for
	// development, not for production: clients must compare the identifier).
	Issuer string `yaml:"issuer"`
	// Limits bound requests.
	Limits Limits `yaml:"limits"`
	// DisableExplain ignores the X-Vigil-Explain request header, so that
	// responses never carry policy IDs or evaluation errors.
	DisableExplain bool `yaml:"disable_explain"`
}

// SetDefaults fills unset fields.
func (c *Config) SetDefaults() { c.Limits.SetDefaults() }

// Validate checks the section; errors name the key.
func (c *Config) Validate() error {
	var errs []error
	if c.Issuer != "" {
		if _, err := parseIssuer(c.Issuer); err != nil {
			errs = append(errs, fmt.Errorf("issuer: %w", err))
		}
	}
	if err := c.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// parseIssuer checks a PDP identifier: an absolute http(s) URL without
// query or fragment. The trailing slash is dropped.
func parseIssuer(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL: %w", s, err)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("%q must be an absolute https:// URL (http:// only for development)", s)
	case u.Host == "":
		return nil, fmt.Errorf("%q has no host", s)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, fmt.Errorf("%q must not have a query or fragment", s)
	case u.User != nil:
		return nil, fmt.Errorf("%q must not carry user information", s)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}
