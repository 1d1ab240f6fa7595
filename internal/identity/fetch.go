package identity

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Response size limits. Issuer endpoints are trusted to serve keys, not to
// be well-behaved: a huge or endless body must not exhaust memory.
const (
	maxDiscoveryBytes     = 256 << 10
	maxJWKSBytes          = 1 << 20
	maxIntrospectionBytes = 64 << 10
	maxJWKSKeys           = 100
)

// JWKS refresh policy.
const (
	jwksDefaultMaxAge = 10 * time.Minute
	jwksMinMaxAge     = time.Minute
	jwksMaxMaxAge     = 24 * time.Hour
	// jwksRefetchInterval rate-limits the refetch triggered by an unknown
	// key id, per issuer.
	jwksRefetchInterval = 10 * time.Second
	// jwksFetchTimeout bounds one discovery + JWKS fetch.
	jwksFetchTimeout = 10 * time.Second
	// jwksRetryMin and jwksRetryMax bound the backoff after a failed
	// background refresh.
	jwksRetryMin = 15 * time.Second
	jwksRetryMax = 5 * time.Minute
)

// httpDoer is the part of *http.Client the package uses.
type httpDoer interface {
	Do(*http.Request) (*http.Response, error)
}

// readResponse checks the status and reads at most limit bytes of body.
func readResponse(resp *http.Response, limit int64) ([]byte, error) {
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// Drain a little so the connection can be reused; ignore errors.
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
		return nil, fmt.Errorf("unexpected HTTP status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("response body exceeds %d bytes", limit)
	}
	return body, nil
}

// getLimited GETs url and returns its body (at most limit bytes) and
// headers. Only status 200 is a success.
func getLimited(ctx context.Context, client httpDoer, url, accept string, limit int64) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", url, err)
	}
	req.Header.Set("Accept", accept)
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", url, err)
	}
	body, err := readResponse(resp, limit)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return body, resp.Header, nil
}

// cacheMaxAge returns the lifetime a Cache-Control header grants a JWKS,
// bounded to [jwksMinMaxAge, jwksMaxMaxAge]; the default applies when the
// header sets no max-age. no-store and no-cache mean the minimum.
func cacheMaxAge(header string) time.Duration {
	d, ok := parseMaxAge(header)
	if !ok {
		return jwksDefaultMaxAge
	}
	return min(max(d, jwksMinMaxAge), jwksMaxMaxAge)
}

// parseMaxAge extracts max-age from a Cache-Control header value. It reports
// false when the header says nothing about freshness.
func parseMaxAge(header string) (time.Duration, bool) {
	var (
		age   time.Duration
		found bool
	)
	for directive := range strings.SplitSeq(header, ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(directive), "=")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "no-store", "no-cache":
			return 0, true
		case "max-age":
			v := strings.Trim(strings.TrimSpace(value), `"`)
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange && v != "" {
					// RFC 9111 §1.2.2: an overlarge delta-seconds means
					// "very long".
					age, found = jwksMaxMaxAge, true
				}
				continue
			}
			if n > uint64(jwksMaxMaxAge/time.Second) {
				n = uint64(jwksMaxMaxAge / time.Second)
			}
			age, found = time.Duration(n)*time.Second, true
		}
	}
	return age, found
}
