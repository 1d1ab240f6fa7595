package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// Forward-auth: a proxy in front of the API (NGINX auth_request, Traefik
// ForwardAuth, Caddy forward_auth) asks the gateway about each request
// before forwarding it. The original method and URI come from
// X-Original-Method/X-Original-URI (the NGINX convention) or
// X-Forwarded-Method/X-Forwarded-Uri (Traefik, Caddy), host and scheme from
// X-Forwarded-Host/-Proto, the client address from X-Forwarded-For (or
// X-Real-IP). These headers are believed only from trusted proxies; any
// other caller is refused. The answer is 200 with the identity headers, all
// of them, empty when unknown (allow), 401 with WWW-Authenticate, 403, 400
// for unusable requests, 503 when no policy is active: only 200 allows, so
// every failure fails closed.

// maxOriginalURI bounds X-Original-URI / X-Forwarded-Uri.
const maxOriginalURI = 16 << 10

// ForwardAuthHandler returns the forward-auth endpoint, for mounting on a
// listener other than the gateway's. The gateway itself serves it at
// forward_auth.path when enabled.
func (g *Gateway) ForwardAuthHandler() http.Handler {
	return http.HandlerFunc(g.serveForwardAuth)
}

// origin is the original request a forward-auth call asks about.
type origin struct {
	method string
	path   string // raw path, no query
	host   string // "" when not sent
	scheme string // "" when not sent
}

// errOrigin is the class of errors in forward-auth request headers.
var errOrigin = errors.New("forward-auth request")

// single returns the one value of header key; more than one is an error
// (proxies set these headers once; a second copy is a smuggling attempt).
func single(h http.Header, key string) (string, error) {
	vv := h.Values(key)
	switch len(vv) {
	case 0:
		return "", nil
	case 1:
		return strings.TrimSpace(vv[0]), nil
	}
	return "", fmt.Errorf("%w: header %s appears %d times", errOrigin, key, len(vv))
}

// either returns the value of the first of two equivalent headers; when
// both are set they must agree.
func either(h http.Header, a, b string) (string, error) {
	va, err := single(h, a)
	if err != nil {
		return "", err
	}
	vb, err := single(h, b)
	if err != nil {
		return "", err
	}
	if va != "" && vb != "" && va != vb {
		return "", fmt.Errorf("%w: %s and %s disagree", errOrigin, a, b)
	}
	if va != "" {
		return va, nil
	}
	return vb, nil
}

// parseOrigin reads the original request from forward-auth headers.
func parseOrigin(h http.Header) (origin, error) {
	var o origin
	var err error
	if o.method, err = either(h, "X-Original-Method", "X-Forwarded-Method"); err != nil {
		return origin{}, err
	}
	if o.method == "" {
		return origin{}, fmt.Errorf("%w: X-Original-Method or X-Forwarded-Method is required", errOrigin)
	}
	uri, err := either(h, "X-Original-Uri", "X-Forwarded-Uri")
	if err != nil {
		return origin{}, err
	}
	switch {
	case uri == "":
		return origin{}, fmt.Errorf("%w: X-Original-URI or X-Forwarded-Uri is required", errOrigin)
	case len(uri) > maxOriginalURI:
		return origin{}, fmt.Errorf("%w: original URI is longer than %d bytes", errOrigin, maxOriginalURI)
	case uri[0] != '/':
		return origin{}, fmt.Errorf("%w: original URI must be a path starting with \"/\"", errOrigin)
	}
	for i := 0; i < len(uri); i++ {
		if c := uri[i]; c <= ' ' || c == 0x7f || c == '#' {
			return origin{}, fmt.Errorf("%w: original URI contains a space, control character or fragment", errOrigin)
		}
	}
	o.path, _, _ = strings.Cut(uri, "?")

	if o.host, err = single(h, "X-Forwarded-Host"); err != nil {
		return origin{}, err
	}
	if o.host != "" && !validHost(o.host) {
		return origin{}, fmt.Errorf("%w: X-Forwarded-Host is not a host", errOrigin)
	}
	proto, err := single(h, "X-Forwarded-Proto")
	if err != nil {
		return origin{}, err
	}
	switch p := strings.ToLower(proto); p {
	case "":
	case "http", "https":
		o.scheme = p
	case "ws":
		o.scheme = "http"
	case "wss":
		o.scheme = "https"
	default:
		return origin{}, fmt.Errorf("%w: X-Forwarded-Proto must be http or https", errOrigin)
	}
	return o, nil
}

// serveForwardAuth answers one forward-auth request.
func (g *Gateway) serveForwardAuth(w http.ResponseWriter, r *http.Request) {
	in := g.readInbound(r)
	w.Header().Set(requestIDHeader, in.rid)
	w.Header().Set("Cache-Control", "no-store")
	log := g.requestLog(in.rid, SurfaceForwardAuth)
	wrote := false
	defer func() {
		// Fail closed: an internal failure is a 500, which every supported
		// proxy treats as a denial.
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			log.Error("forward-auth failed", "panic", fmt.Sprint(p))
			if !wrote {
				writeProblem(w, http.StatusInternalServerError, detailInternal, in.rid, nil)
			}
		}
	}()
	if !in.trusted {
		log.Warn("forward-auth request from an untrusted peer", "peer", in.peer)
		writeProblem(w, http.StatusForbidden, detailUntrustedPeer, in.rid, nil)
		return
	}
	o, err := parseOrigin(r.Header)
	if err != nil {
		log.Info("forward-auth request rejected", "outcome", OutcomeBadRequest, "reason", err.Error())
		writeProblem(w, http.StatusBadRequest, "The forward-auth request does not describe the original request: "+strings.TrimPrefix(err.Error(), errOrigin.Error()+": ")+".", in.rid, nil)
		return
	}
	if o.host != "" {
		in.host = o.host
	}
	if o.scheme != "" {
		in.scheme = o.scheme
	}
	if len(r.Header.Values("X-Forwarded-For")) == 0 {
		if a, err := netip.ParseAddr(strings.TrimSpace(r.Header.Get("X-Real-Ip"))); err == nil {
			in.ip = a.Unmap()
		}
	}
	d := g.authorize(w, r, in, o.method, o.path, SurfaceForwardAuth)
	wrote = true
	if d == nil {
		return
	}
	h := w.Header()
	g.setIdentityHeaders(h, d.call.token, in.rid)
	// Every identity header is in the answer, empty when there is nothing
	// to say (anonymous, no sid, no roles): proxies that copy named headers
	// then overwrite the client's copy with the empty value, and Caddy 2.6
	// (copy_headers) does not substitute placeholder text for a missing one.
	for _, k := range g.identityHeaders {
		if _, ok := h[k]; !ok {
			h[k] = []string{""}
		}
	}
	w.WriteHeader(http.StatusOK)
}
