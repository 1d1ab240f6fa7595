package identity

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// errInactive is returned by introspection for {"active": false}.
var errInactive = errors.New("introspection: token is not active")

// introspector calls an RFC 7662 introspection endpoint.
type introspector struct {
	issuer string
	cfg    IntrospectionConfig
	client httpDoer
}

// opaqueFlight shares one introspection between concurrent requests that
// present the same token.
type opaqueFlight struct {
	mu    sync.Mutex
	calls map[[32]byte]*opaqueCall
}

type opaqueCall struct {
	done chan struct{}
	tok  *Token
	err  *Error
}

// call returns the claims of an active token, errInactive for an inactive
// one, or another error when the endpoint could not answer properly.
func (in *introspector) call(ctx context.Context, raw string) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, in.cfg.Timeout)
	defer cancel()
	form := url.Values{"token": {raw}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.cfg.Endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("introspection request to %s: %w", in.cfg.Endpoint, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// client_secret_basic: both parts form-encoded first (RFC 6749 §2.3.1).
	req.SetBasicAuth(url.QueryEscape(in.cfg.ClientID), url.QueryEscape(in.cfg.ClientSecret))
	resp, err := in.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("introspection request to %s: %w", in.cfg.Endpoint, err)
	}
	body, err := readResponse(resp, maxIntrospectionBytes)
	if err != nil {
		return nil, fmt.Errorf("introspection response from %s: %w", in.cfg.Endpoint, err)
	}
	claims, err := decodeClaims(body)
	if err != nil {
		return nil, fmt.Errorf("introspection response from %s: %w", in.cfg.Endpoint, err)
	}
	active, ok := claims["active"].(bool)
	if !ok {
		return nil, fmt.Errorf("introspection response from %s: \"active\" is missing or not a boolean", in.cfg.Endpoint)
	}
	if !active {
		return nil, errInactive
	}
	return claims, nil
}
