// Package apiauth authenticates callers of Vigil's own APIs (the AuthZEN
// decision API and the admin API) with static keys. Keys are kept only as
// SHA-256 digests and compared in constant time.
package apiauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// Keys is a set of accepted API keys. The zero value accepts nothing.
type Keys struct {
	digests [][32]byte
}

// NewKeys returns a key set; empty strings are ignored.
func NewKeys(keys ...string) *Keys {
	k := &Keys{}
	for _, s := range keys {
		if s != "" {
			k.digests = append(k.digests, sha256.Sum256([]byte(s)))
		}
	}
	return k
}

// Len reports how many keys are accepted.
func (k *Keys) Len() int { return len(k.digests) }

// Check reports whether the presented key is one of the set. Every stored
// digest is compared so that timing does not reveal which one matched.
func (k *Keys) Check(presented string) bool {
	if presented == "" || k == nil {
		return false
	}
	d := sha256.Sum256([]byte(presented))
	ok := 0
	for i := range k.digests {
		ok |= subtle.ConstantTimeCompare(d[:], k.digests[i][:])
	}
	return ok == 1
}

// FromRequest extracts the presented key: "Authorization: Bearer <key>",
// a raw "Authorization: <key>" (as the AuthZEN interop harness sends), or
// "X-API-Key: <key>".
func FromRequest(r *http.Request) string {
	if v := r.Header.Get("Authorization"); v != "" {
		if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			return strings.TrimSpace(v[7:])
		}
		return strings.TrimSpace(v)
	}
	return strings.TrimSpace(r.Header.Get("X-API-Key"))
}

// Require wraps next so that only callers presenting a key from k reach it.
// Others get 401 with a WWW-Authenticate challenge and a JSON error body.
// When optional is true and k is empty, every caller is let through (local
// use without keys).
func Require(k *Keys, realm string, optional bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if optional && k.Len() == 0 {
			next.ServeHTTP(w, r)
			return
		}
		if !k.Check(FromRequest(r)) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`"`)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusUnauthorized)
			msg := `{"error":"authentication required: present an API key as 'Authorization: Bearer <key>'"}`
			if FromRequest(r) != "" {
				msg = `{"error":"the presented API key is not valid"}`
			}
			_, _ = w.Write([]byte(msg))
			return
		}
		next.ServeHTTP(w, r)
	})
}
