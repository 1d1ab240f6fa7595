package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Subject identifier formats (RFC 9493 and OpenID SSF 1.0).
const (
	FormatAccount         = "account"
	FormatEmail           = "email"
	FormatIssSub          = "iss_sub"
	FormatOpaque          = "opaque"
	FormatPhoneNumber     = "phone_number"
	FormatDID             = "did"
	FormatURI             = "uri"
	FormatAliases         = "aliases"
	FormatJWTID           = "jwt_id"
	FormatSAMLAssertionID = "saml_assertion_id"
	FormatIPAddresses     = "ip-addresses"
	FormatComplex         = "complex"
)

// Limits on subject identifiers. They bound memory and index key sizes for
// input that comes from transmitters.
const (
	// MaxSubjectSize is the largest JSON subject identifier ParseSubject accepts.
	MaxSubjectSize = 16 << 10
	maxIDLen       = 1024
	maxAliases     = 32
)

// ErrSubject is wrapped by every subject identifier error.
var ErrSubject = errors.New("invalid subject identifier")

// Subject is a subject identifier as defined by RFC 9493 and extended by
// OpenID SSF 1.0 (jwt_id, saml_assertion_id, ip-addresses, complex). One
// struct carries every format: Format selects which members are meaningful.
// Simple formats use the flat members; "aliases" uses Identifiers; "complex"
// uses the member pointers (User, Session, ...), each itself a simple
// identifier or an aliases identifier.
type Subject struct {
	Format string `json:"format"`

	Email       string   `json:"email,omitempty"`        // email
	Iss         string   `json:"iss,omitempty"`          // iss_sub, jwt_id
	Sub         string   `json:"sub,omitempty"`          // iss_sub
	ID          string   `json:"id,omitempty"`           // opaque
	PhoneNumber string   `json:"phone_number,omitempty"` // phone_number
	URL         string   `json:"url,omitempty"`          // did
	URI         string   `json:"uri,omitempty"`          // account, uri
	JTI         string   `json:"jti,omitempty"`          // jwt_id
	Issuer      string   `json:"issuer,omitempty"`       // saml_assertion_id
	AssertionID string   `json:"assertion_id,omitempty"` // saml_assertion_id
	IPAddresses []string `json:"ip-addresses,omitempty"` // ip-addresses

	Identifiers []Subject `json:"identifiers,omitempty"` // aliases

	// Members of a complex subject. Absent members are wildcards.
	User        *Subject `json:"user,omitempty"`
	Session     *Subject `json:"session,omitempty"`
	Device      *Subject `json:"device,omitempty"`
	Application *Subject `json:"application,omitempty"`
	Tenant      *Subject `json:"tenant,omitempty"`
	OrgUnit     *Subject `json:"org_unit,omitempty"`
	Group       *Subject `json:"group,omitempty"`
}

// legacyFormat maps the `subject_type` values of pre-RFC 9493 transmitters
// (Google's RISC transmitter among them) to RFC 9493 formats.
func legacyFormat(t string) (string, bool) {
	switch t {
	case "iss-sub", "iss_sub":
		return FormatIssSub, true
	case "email":
		return FormatEmail, true
	case "phone", "phone-number", "phone_number":
		return FormatPhoneNumber, true
	case "opaque":
		return FormatOpaque, true
	case "account":
		return FormatAccount, true
	case "did":
		return FormatDID, true
	case "uri":
		return FormatURI, true
	case "aliases":
		return FormatAliases, true
	case "jwt-id", "jwt_id":
		return FormatJWTID, true
	case "complex":
		return FormatComplex, true
	}
	return "", false
}

// ParseSubject decodes and validates a JSON subject identifier. It accepts
// the legacy `subject_type` member in place of `format`, and SSF's "phone"
// spelling of "phone_number". Unknown members are ignored, as RFC 9493
// requires. The result is valid (Validate returns nil).
func ParseSubject(data []byte) (Subject, error) {
	if len(data) > MaxSubjectSize {
		return Subject{}, fmt.Errorf("%w: larger than %d bytes", ErrSubject, MaxSubjectSize)
	}
	var s Subject
	if err := unmarshalSubject(data, &s, 0); err != nil {
		return Subject{}, err
	}
	if err := s.Validate(); err != nil {
		return Subject{}, err
	}
	return s, nil
}

// rawSubject mirrors Subject for decoding with legacy spellings and without
// recursion through json.Unmarshal (members are decoded by unmarshalSubject
// so nesting depth stays bounded).
type rawSubject struct {
	Format      *string           `json:"format"`
	SubjectType *string           `json:"subject_type"`
	Email       string            `json:"email"`
	Iss         string            `json:"iss"`
	Sub         string            `json:"sub"`
	ID          string            `json:"id"`
	PhoneNumber string            `json:"phone_number"`
	URL         string            `json:"url"`
	URI         string            `json:"uri"`
	JTI         string            `json:"jti"`
	Issuer      string            `json:"issuer"`
	AssertionID string            `json:"assertion_id"`
	IPAddresses []string          `json:"ip-addresses"`
	Identifiers []json.RawMessage `json:"identifiers"`
	User        json.RawMessage   `json:"user"`
	Session     json.RawMessage   `json:"session"`
	Device      json.RawMessage   `json:"device"`
	Application json.RawMessage   `json:"application"`
	Tenant      json.RawMessage   `json:"tenant"`
	OrgUnit     json.RawMessage   `json:"org_unit"`
	Group       json.RawMessage   `json:"group"`
}

func unmarshalSubject(data []byte, s *Subject, depth int) error {
	if depth > 2 {
		return fmt.Errorf("%w: nested too deeply", ErrSubject)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return fmt.Errorf("%w: not a JSON object", ErrSubject)
	}
	var r rawSubject
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("%w: %v", ErrSubject, err)
	}
	switch {
	case r.Format != nil:
		s.Format = *r.Format
		if s.Format == "phone" { // SSF 1.0 remove-subject example spelling
			s.Format = FormatPhoneNumber
		}
	case r.SubjectType != nil:
		f, ok := legacyFormat(*r.SubjectType)
		if !ok {
			return fmt.Errorf("%w: unsupported subject_type %q", ErrSubject, truncate(*r.SubjectType))
		}
		s.Format = f
	default:
		return fmt.Errorf("%w: format is missing", ErrSubject)
	}
	s.Email, s.Iss, s.Sub, s.ID = r.Email, r.Iss, r.Sub, r.ID
	s.PhoneNumber, s.URL, s.URI, s.JTI = r.PhoneNumber, r.URL, r.URI, r.JTI
	s.Issuer, s.AssertionID, s.IPAddresses = r.Issuer, r.AssertionID, r.IPAddresses
	if len(r.Identifiers) > maxAliases {
		return fmt.Errorf("%w: more than %d aliases", ErrSubject, maxAliases)
	}
	for _, raw := range r.Identifiers {
		var m Subject
		if err := unmarshalSubject(raw, &m, depth+1); err != nil {
			return err
		}
		s.Identifiers = append(s.Identifiers, m)
	}
	members := []struct {
		raw json.RawMessage
		dst **Subject
	}{
		{r.User, &s.User}, {r.Session, &s.Session}, {r.Device, &s.Device},
		{r.Application, &s.Application}, {r.Tenant, &s.Tenant},
		{r.OrgUnit, &s.OrgUnit}, {r.Group, &s.Group},
	}
	for _, m := range members {
		if len(m.raw) == 0 || string(m.raw) == "null" {
			continue
		}
		var sub Subject
		if err := unmarshalSubject(m.raw, &sub, depth+1); err != nil {
			return err
		}
		*m.dst = &sub
	}
	return nil
}

// Validate reports whether s is a well-formed subject identifier of a format
// Vigil can match. Top level: any simple format, aliases or complex. Aliases
// contain simple identifiers only; complex members are simple identifiers or
// aliases of simple identifiers. Strings are non-empty UTF-8 of at most 1024
// bytes. "ip-addresses" is parsed but not supported (nothing in a request
// identifies a subject by address), so it is rejected.
func (s Subject) Validate() error { return s.validate(levelTop) }

type subjectLevel int

const (
	levelTop subjectLevel = iota
	levelMember
	levelAlias
)

func (s Subject) validate(level subjectLevel) error {
	switch s.Format {
	case FormatAliases:
		if level == levelAlias {
			return fmt.Errorf("%w: aliases may not contain aliases", ErrSubject)
		}
		if len(s.Identifiers) == 0 {
			return fmt.Errorf("%w: aliases needs identifiers", ErrSubject)
		}
		if len(s.Identifiers) > maxAliases {
			return fmt.Errorf("%w: more than %d aliases", ErrSubject, maxAliases)
		}
		for i, id := range s.Identifiers {
			if err := id.validate(levelAlias); err != nil {
				return fmt.Errorf("identifiers[%d]: %w", i, err)
			}
		}
		return nil
	case FormatComplex:
		if level != levelTop {
			return fmt.Errorf("%w: complex may only appear at the top level", ErrSubject)
		}
		usable := 0
		for _, m := range s.members() {
			if m.sub == nil {
				continue
			}
			if err := m.sub.validate(levelMember); err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			if m.dim != dimNone {
				usable++
			}
		}
		if usable == 0 {
			return fmt.Errorf("%w: complex needs a user, session, device, application or tenant member", ErrSubject)
		}
		return nil
	}
	if s.User != nil || s.Session != nil || s.Device != nil || s.Application != nil ||
		s.Tenant != nil || s.OrgUnit != nil || s.Group != nil || len(s.Identifiers) > 0 {
		return fmt.Errorf("%w: format %q has members of another format", ErrSubject, truncate(s.Format))
	}
	switch s.Format {
	case FormatEmail:
		if err := checkID("email", s.Email); err != nil {
			return err
		}
		if !strings.Contains(s.Email, "@") {
			return fmt.Errorf("%w: email %q has no @", ErrSubject, truncate(s.Email))
		}
	case FormatIssSub:
		if err := checkID("iss", s.Iss); err != nil {
			return err
		}
		return checkID("sub", s.Sub)
	case FormatOpaque:
		return checkID("id", s.ID)
	case FormatPhoneNumber:
		if err := checkID("phone_number", s.PhoneNumber); err != nil {
			return err
		}
		if !strings.HasPrefix(s.PhoneNumber, "+") {
			return fmt.Errorf("%w: phone_number must be E.164 (+...)", ErrSubject)
		}
	case FormatAccount:
		if err := checkID("uri", s.URI); err != nil {
			return err
		}
		if !strings.HasPrefix(s.URI, "acct:") || len(s.URI) == len("acct:") {
			return fmt.Errorf("%w: account uri must be an acct: URI", ErrSubject)
		}
	case FormatDID:
		if err := checkID("url", s.URL); err != nil {
			return err
		}
		if !strings.HasPrefix(s.URL, "did:") {
			return fmt.Errorf("%w: did url must start with did:", ErrSubject)
		}
	case FormatURI:
		if err := checkID("uri", s.URI); err != nil {
			return err
		}
		if i := strings.IndexByte(s.URI, ':'); i <= 0 {
			return fmt.Errorf("%w: uri %q is not absolute", ErrSubject, truncate(s.URI))
		}
	case FormatJWTID:
		if err := checkID("iss", s.Iss); err != nil {
			return err
		}
		return checkID("jti", s.JTI)
	case FormatSAMLAssertionID:
		if err := checkID("issuer", s.Issuer); err != nil {
			return err
		}
		return checkID("assertion_id", s.AssertionID)
	case FormatIPAddresses:
		for _, a := range s.IPAddresses {
			if _, err := netip.ParseAddr(a); err != nil {
				return fmt.Errorf("%w: ip-addresses: %q is not an IP address", ErrSubject, truncate(a))
			}
		}
		return fmt.Errorf("%w: format ip-addresses is not supported", ErrSubject)
	case "":
		return fmt.Errorf("%w: format is missing", ErrSubject)
	default:
		return fmt.Errorf("%w: format %q is not supported", ErrSubject, truncate(s.Format))
	}
	return nil
}

func checkID(name, v string) error {
	switch {
	case v == "":
		return fmt.Errorf("%w: %s is missing", ErrSubject, name)
	case len(v) > maxIDLen:
		return fmt.Errorf("%w: %s is longer than %d bytes", ErrSubject, name, maxIDLen)
	case !utf8.ValidString(v):
		return fmt.Errorf("%w: %s is not UTF-8", ErrSubject, name)
	case strings.IndexByte(v, 0) >= 0:
		return fmt.Errorf("%w: %s contains a NUL byte", ErrSubject, name)
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// String renders the subject compactly for logs and reasons, e.g.
// "iss_sub:https://idp/|u-42" or "complex{user:email:a@b session:opaque:s1}".
func (s Subject) String() string {
	var b strings.Builder
	s.write(&b)
	return b.String()
}

func (s Subject) write(b *strings.Builder) {
	b.WriteString(s.Format)
	switch s.Format {
	case FormatAliases:
		b.WriteByte('[')
		for i, id := range s.Identifiers {
			if i > 0 {
				b.WriteByte(' ')
			}
			id.write(b)
		}
		b.WriteByte(']')
		return
	case FormatComplex:
		b.WriteByte('{')
		first := true
		for _, m := range s.members() {
			if m.sub == nil {
				continue
			}
			if !first {
				b.WriteByte(' ')
			}
			first = false
			b.WriteString(m.name)
			b.WriteByte(':')
			m.sub.write(b)
		}
		b.WriteByte('}')
		return
	}
	b.WriteByte(':')
	switch s.Format {
	case FormatEmail:
		b.WriteString(s.Email)
	case FormatIssSub:
		b.WriteString(s.Iss + "|" + s.Sub)
	case FormatOpaque:
		b.WriteString(s.ID)
	case FormatPhoneNumber:
		b.WriteString(s.PhoneNumber)
	case FormatDID:
		b.WriteString(s.URL)
	case FormatAccount, FormatURI:
		b.WriteString(s.URI)
	case FormatJWTID:
		b.WriteString(s.Iss + "|" + s.JTI)
	case FormatSAMLAssertionID:
		b.WriteString(s.Issuer + "|" + s.AssertionID)
	case FormatIPAddresses:
		b.WriteString(strings.Join(s.IPAddresses, ","))
	}
}

type member struct {
	name string
	sub  *Subject
	dim  dim
}

// members lists the complex members in a fixed order. org_unit and group
// have no request counterpart (dimNone): they are parsed and shown but do
// not constrain matching, which makes the signal apply more broadly rather
// than not at all.
func (s Subject) members() [7]member {
	return [7]member{
		{"user", s.User, dimUser},
		{"session", s.Session, dimSession},
		{"device", s.Device, dimDevice},
		{"application", s.Application, dimApplication},
		{"tenant", s.Tenant, dimTenant},
		{"org_unit", s.OrgUnit, dimNone},
		{"group", s.Group, dimNone},
	}
}
