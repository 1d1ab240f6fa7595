package gateway

import (
	"crypto/rand"
	"encoding/base32"
	"net/http"
	"strings"
)

// hopByHop are the headers RFC 9110 §7.6.1 defines as connection-specific.
// httputil.ReverseProxy also removes them and any listed in Connection; the
// gateway removes them itself where it builds requests (WebSocket dial,
// forward-auth answers).
var hopByHop = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func isHopByHop(canon string) bool {
	for _, h := range hopByHop {
		if h == canon {
			return true
		}
	}
	return false
}

// removeHopByHop deletes hop-by-hop headers and every header named in
// Connection.
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				h.Del(f)
			}
		}
	}
	for _, k := range hopByHop {
		h.Del(k)
	}
}

// Request IDs.
const (
	requestIDHeader = "X-Request-Id"
	maxRequestIDLen = 128
)

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newRequestID returns 128 random bits, base32-encoded (26 characters).
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand documents a fatal error instead)
	return idEncoding.EncodeToString(b[:])
}

// validRequestID accepts 1-128 characters of [A-Za-z0-9._:@/+=-]: enough
// for UUIDs, Envoy/NGINX/Traefik ids and W3C trace ids, and nothing that
// could break a log line or a header.
func validRequestID(s string) bool {
	if s == "" || len(s) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("._:@/+=-", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// headerSafe reports whether s can be sent as a header value unchanged:
// visible ASCII and spaces, no leading or trailing space, bounded length.
func headerSafe(s string) bool {
	if len(s) > 1024 || strings.TrimSpace(s) != s {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}
