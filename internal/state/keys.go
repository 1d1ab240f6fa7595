package state

import (
	"fmt"
	"slices"
	"strings"
)

// dim is a dimension of a request that a subject identifier can name.
type dim uint8

const (
	dimNone dim = iota
	dimUser
	dimSession
	dimDevice
	dimToken
	dimApplication
	dimTenant
)

// Index key prefixes. A key is prefix byte + value(s) separated by NUL;
// NUL never occurs in a validated identifier, so keys cannot collide.
const (
	keyIssSub  = 'u' // user by issuer + sub
	keySub     = 's' // user by sub of any issuer (opaque, did, uri)
	keyEmail   = 'e' // user by lower-cased email (email, account)
	keyPhone   = 'p' // user by phone number
	keySession = 'S' // session id (sid)
	keyDevice  = 'd' // device id
	keyToken   = 't' // token by issuer + jti (or SAML assertion id)
	keyApp     = 'a' // application (OAuth client_id)
	keyTenant  = 'T' // tenant id
)

func key1(prefix byte, v string) string { return string(prefix) + v }

func key2(prefix byte, a, b string) string { return string(prefix) + a + "\x00" + b }

// keysFor returns the index keys a subject identifier names in dimension d.
// Several keys mean alternatives (aliases): matching any one is enough.
func (s Subject) keysFor(d dim) []string {
	if s.Format == FormatAliases {
		var out []string
		for _, id := range s.Identifiers {
			for _, k := range id.keysFor(d) {
				if !slices.Contains(out, k) {
					out = append(out, k)
				}
			}
		}
		return out
	}
	if s.Format == FormatJWTID || s.Format == FormatSAMLAssertionID {
		// A token is a token whatever dimension it appears in.
		if s.Format == FormatJWTID {
			return []string{key2(keyToken, s.Iss, s.JTI)}
		}
		return []string{key2(keyToken, s.Issuer, s.AssertionID)}
	}
	if d == dimUser {
		switch s.Format {
		case FormatIssSub:
			return []string{key2(keyIssSub, s.Iss, s.Sub)}
		case FormatEmail:
			return []string{key1(keyEmail, lowerASCIIString(s.Email))}
		case FormatAccount:
			return []string{key1(keyEmail, lowerASCIIString(strings.TrimPrefix(s.URI, "acct:")))}
		case FormatPhoneNumber:
			return []string{key1(keyPhone, s.PhoneNumber)}
		case FormatOpaque:
			return []string{key1(keySub, s.ID)}
		case FormatDID:
			return []string{key1(keySub, s.URL)}
		case FormatURI:
			return []string{key1(keySub, s.URI)}
		}
		return nil
	}
	var v string
	switch s.Format {
	case FormatOpaque:
		v = s.ID
	case FormatURI, FormatAccount:
		v = s.URI
	case FormatDID:
		v = s.URL
	case FormatEmail:
		v = s.Email
	case FormatPhoneNumber:
		v = s.PhoneNumber
	case FormatIssSub:
		v = s.Sub
	default:
		return nil
	}
	var p byte
	switch d {
	case dimSession:
		p = keySession
	case dimDevice:
		p = keyDevice
	case dimApplication:
		p = keyApp
	case dimTenant:
		p = keyTenant
	default:
		return nil
	}
	return []string{key1(p, v)}
}

// constraint requires the request to present one of keys in dimension dim.
type constraint struct {
	dim  dim
	keys []string
}

// target is one place a signal is recorded: an index key, plus the
// constraints (other members of a complex subject) a request must also meet.
type target struct {
	key     string
	cond    []constraint
	condKey string // canonical form of cond; "" when unconditional
}

// targets computes where a signal is recorded. The dimension of a simple
// (or aliases) top-level subject depends on the kind:
//
//   - jwt_id / saml_assertion_id always name a token;
//   - session-revoked with an opaque id names a session id or a user's sub
//     (CAEP examples use both; recording both fails closed);
//   - device-compliance-change with opaque/uri/did names a device, with
//     email/iss_sub/account/phone_number the user (all of their devices);
//   - risk-level-change follows its principal (USER, DEVICE, SESSION,
//     TENANT; anything else means the user);
//   - everything else names the user.
func targets(kind Kind, principal string, s Subject) ([]target, error) {
	if s.Format == FormatComplex {
		return complexTargets(s)
	}
	ids := []Subject{s}
	if s.Format == FormatAliases {
		ids = s.Identifiers
	}
	var out []target
	add := func(k string) {
		for _, t := range out {
			if t.key == k {
				return
			}
		}
		out = append(out, target{key: k})
	}
	for _, id := range ids {
		for _, d := range simpleDims(kind, principal, id.Format) {
			for _, k := range id.keysFor(d) {
				add(k)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s names nothing a request presents", ErrSubject, s)
	}
	return out, nil
}

func simpleDims(kind Kind, principal, format string) []dim {
	switch format {
	case FormatJWTID, FormatSAMLAssertionID:
		return []dim{dimToken}
	}
	switch kind {
	case KindSessionRevoked:
		if format == FormatOpaque {
			return []dim{dimSession, dimUser}
		}
	case KindDeviceComplianceChange:
		switch format {
		case FormatOpaque, FormatURI, FormatDID:
			return []dim{dimDevice}
		}
	case KindRiskLevelChange:
		switch strings.ToUpper(principal) {
		case "DEVICE":
			return []dim{dimDevice}
		case "SESSION":
			return []dim{dimSession}
		case "TENANT":
			return []dim{dimTenant}
		}
	}
	return []dim{dimUser}
}

func complexTargets(s Subject) ([]target, error) {
	var per [dimTenant + 1][]string
	for _, m := range s.members() {
		if m.sub == nil || m.dim == dimNone {
			continue
		}
		d := m.dim
		if m.sub.Format == FormatJWTID || m.sub.Format == FormatSAMLAssertionID {
			d = dimToken
		}
		ks := m.sub.keysFor(d)
		if len(ks) == 0 {
			return nil, fmt.Errorf("%w: complex member %s names nothing a request presents", ErrSubject, m.name)
		}
		if per[d] != nil { // two members in one dimension: both must hold
			return nil, fmt.Errorf("%w: complex subject names dimension of %s twice", ErrSubject, m.name)
		}
		per[d] = ks
	}
	// Index under the most specific dimension a request presents.
	primary := dimNone
	for _, d := range [...]dim{dimToken, dimSession, dimUser, dimDevice, dimApplication, dimTenant} {
		if per[d] != nil {
			primary = d
			break
		}
	}
	if primary == dimNone {
		return nil, fmt.Errorf("%w: complex subject has no usable member", ErrSubject)
	}
	var cond []constraint
	var ck strings.Builder
	for d := dimUser; d <= dimTenant; d++ {
		if d == primary || per[d] == nil {
			continue
		}
		ks := slices.Clone(per[d])
		slices.Sort(ks)
		cond = append(cond, constraint{dim: d, keys: ks})
		fmt.Fprintf(&ck, "%d=%s;", d, strings.Join(ks, "\x01"))
	}
	out := make([]target, 0, len(per[primary]))
	for _, k := range per[primary] {
		out = append(out, target{key: k, cond: cond, condKey: ck.String()})
	}
	return out, nil
}

// requestKeys are the index keys a Query presents, grouped by dimension.
// Keys live in a fixed buffer inside the struct so that lookups on the hot
// path do not allocate; a key that does not fit (very long identifiers) is
// kept as a separately allocated string.
type requestKeys struct {
	buf  [512]byte
	end  int
	n    int
	span [9]struct {
		dim        dim
		start, end int
		long       string
	}
}

func (r *requestKeys) add(d dim, prefix byte, a, b string, two bool) {
	need := 1 + len(a)
	if two {
		need += 1 + len(b)
	}
	sp := &r.span[r.n]
	r.n++
	sp.dim = d
	if r.end+need > len(r.buf) {
		if two {
			sp.long = string(prefix) + a + "\x00" + b
		} else {
			sp.long = string(prefix) + a
		}
		return
	}
	sp.start = r.end
	r.buf[r.end] = prefix
	r.end++
	r.end += copy(r.buf[r.end:], a)
	if two {
		r.buf[r.end] = 0
		r.end++
		r.end += copy(r.buf[r.end:], b)
	}
	sp.end = r.end
}

func (r *requestKeys) key(i int) []byte {
	sp := &r.span[i]
	if sp.long != "" {
		return []byte(sp.long)
	}
	return r.buf[sp.start:sp.end]
}

func (r *requestKeys) init(q *Query) {
	if q.Subject != "" {
		if q.Issuer != "" {
			r.add(dimUser, keyIssSub, q.Issuer, q.Subject, true)
		}
		r.add(dimUser, keySub, q.Subject, "", false)
	}
	if q.Email != "" {
		r.add(dimUser, keyEmail, q.Email, "", false)
		if sp := &r.span[r.n-1]; sp.long != "" {
			sp.long = lowerASCIIString(sp.long)
		} else {
			lowerASCII(r.buf[sp.start+1 : sp.end])
		}
	}
	if q.Phone != "" {
		r.add(dimUser, keyPhone, q.Phone, "", false)
	}
	if q.SessionID != "" {
		r.add(dimSession, keySession, q.SessionID, "", false)
	}
	if q.DeviceID != "" {
		r.add(dimDevice, keyDevice, q.DeviceID, "", false)
	}
	if q.TokenID != "" {
		r.add(dimToken, keyToken, q.Issuer, q.TokenID, true)
	}
	if q.ClientID != "" {
		r.add(dimApplication, keyApp, q.ClientID, "", false)
	}
	if q.Tenant != "" {
		r.add(dimTenant, keyTenant, q.Tenant, "", false)
	}
}

// has reports whether the request presents one of keys in dimension d.
func (r *requestKeys) has(c constraint) bool {
	for i := 0; i < r.n; i++ {
		if r.span[i].dim != c.dim {
			continue
		}
		k := r.key(i)
		for _, want := range c.keys {
			if string(k) == want {
				return true
			}
		}
	}
	return false
}

// lowerASCII lower-cases ASCII letters in place. Emails are compared with
// ASCII letters folded on both sides (domains are case-insensitive, and
// providers treat local parts so in practice); other bytes compare exactly.
func lowerASCII(b []byte) {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
}

func lowerASCIIString(s string) string {
	b := []byte(s)
	lowerASCII(b)
	return string(b)
}
