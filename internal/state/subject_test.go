package state

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseSubject(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // String() of the result; "" = error expected
	}{
		{"email is accepted", `{"format":"email","email":"a@b.example"}`, "email:a@b.example"},
		{"iss_sub is accepted", `{"format":"iss_sub","iss":"https://i","sub":"u1"}`, "iss_sub:https://i|u1"},
		{"opaque is accepted", `{"format":"opaque","id":"x"}`, "opaque:x"},
		{"account needs acct:", `{"format":"account","uri":"acct:a@b"}`, "account:acct:a@b"},
		{"phone_number is accepted", `{"format":"phone_number","phone_number":"+12065550100"}`, "phone_number:+12065550100"},
		{"SSF's phone spelling is accepted", `{"format":"phone","phone_number":"+12065550100"}`, "phone_number:+12065550100"},
		{"did is accepted", `{"format":"did","url":"did:example:123"}`, "did:did:example:123"},
		{"uri is accepted", `{"format":"uri","uri":"https://u.example/1"}`, "uri:https://u.example/1"},
		{"jwt_id is accepted", `{"format":"jwt_id","iss":"https://i","jti":"j1"}`, "jwt_id:https://i|j1"},
		{"saml_assertion_id is accepted", `{"format":"saml_assertion_id","issuer":"https://i","assertion_id":"a1"}`, "saml_assertion_id:https://i|a1"},
		{"aliases are accepted", `{"format":"aliases","identifiers":[{"format":"email","email":"a@b"},{"format":"opaque","id":"x"}]}`, "aliases[email:a@b opaque:x]"},
		{"complex is accepted", `{"format":"complex","user":{"format":"email","email":"a@b"},"session":{"format":"opaque","id":"s"}}`, "complex{user:email:a@b session:opaque:s}"},
		{"legacy subject_type is accepted", `{"subject_type":"iss-sub","iss":"https://i","sub":"u1"}`, "iss_sub:https://i|u1"},
		{"unknown members are ignored", `{"format":"opaque","id":"x","extra":1}`, "opaque:x"},
		{"missing format is rejected", `{"id":"x"}`, ""},
		{"unknown format is rejected", `{"format":"nope","id":"x"}`, ""},
		{"email without @ is rejected", `{"format":"email","email":"ab"}`, ""},
		{"iss_sub without sub is rejected", `{"format":"iss_sub","iss":"https://i"}`, ""},
		{"account without acct: is rejected", `{"format":"account","uri":"mailto:a@b"}`, ""},
		{"ip-addresses are not supported", `{"format":"ip-addresses","ip-addresses":["10.0.0.1"]}`, ""},
		{"nested aliases are rejected", `{"format":"aliases","identifiers":[{"format":"aliases","identifiers":[{"format":"opaque","id":"x"}]}]}`, ""},
		{"complex inside complex is rejected", `{"format":"complex","user":{"format":"complex","user":{"format":"opaque","id":"x"}}}`, ""},
		{"complex with only a group is rejected", `{"format":"complex","group":{"format":"opaque","id":"g"}}`, ""},
		{"a non-object is rejected", `"opaque"`, ""},
		{"wrong member types are rejected", `{"format":"opaque","id":7}`, ""},
		{"NUL bytes are rejected", `{"format":"opaque","id":"a\u0000b"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSubject([]byte(tt.in))
			if tt.want == "" {
				if err == nil {
					t.Fatalf("accepted as %s", s)
				}
				if !errors.Is(err, ErrSubject) {
					t.Fatalf("error %v does not wrap ErrSubject", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if got := s.String(); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestSubjectMatching documents how each subject format maps onto Query.
func TestSubjectMatching(t *testing.T) {
	alice := Query{Issuer: idp, Subject: "u-alice", Email: "Alice@Example.com", Phone: "+12065550100",
		SessionID: "sess-1", TokenID: "tok-1", DeviceID: "dev-1", ClientID: "app-1", Tenant: "ten-1"}
	other := func(mod func(q *Query)) Query { q := alice; mod(&q); return q }
	tests := []struct {
		name    string
		kind    Kind
		subject string
		match   []Query
		miss    []Query
	}{
		{"iss_sub matches issuer and sub", KindAccountDisabled, `{"format":"iss_sub","iss":"https://idp.example","sub":"u-alice"}`,
			[]Query{alice}, []Query{other(func(q *Query) { q.Issuer = "https://other" }), other(func(q *Query) { q.Subject = "u-bob" })}},
		{"email matches the email claim without regard to ASCII case", KindAccountDisabled, `{"format":"email","email":"alice@example.COM"}`,
			[]Query{alice}, []Query{other(func(q *Query) { q.Email = "bob@example.com" })}},
		{"account matches the email claim", KindAccountDisabled, `{"format":"account","uri":"acct:alice@example.com"}`,
			[]Query{alice}, []Query{other(func(q *Query) { q.Email = "" })}},
		{"opaque matches the sub of any issuer", KindAccountDisabled, `{"format":"opaque","id":"u-alice"}`,
			[]Query{alice, other(func(q *Query) { q.Issuer = "https://other" })}, []Query{other(func(q *Query) { q.Subject = "u-bob" })}},
		{"phone_number matches the phone claim", KindAccountDisabled, `{"format":"phone_number","phone_number":"+12065550100"}`,
			[]Query{alice}, []Query{other(func(q *Query) { q.Phone = "" })}},
		{"did matches the sub", KindAccountDisabled, `{"format":"did","url":"did:example:alice"}`,
			[]Query{other(func(q *Query) { q.Subject = "did:example:alice" })}, []Query{alice}},
		{"uri matches the sub", KindAccountDisabled, `{"format":"uri","uri":"https://users.example/alice"}`,
			[]Query{other(func(q *Query) { q.Subject = "https://users.example/alice" })}, []Query{alice}},
		{"jwt_id matches issuer and token id", KindSessionRevoked, `{"format":"jwt_id","iss":"https://idp.example","jti":"tok-1"}`,
			[]Query{alice}, []Query{other(func(q *Query) { q.TokenID = "tok-2" }), other(func(q *Query) { q.Issuer = "https://other" })}},
		{"saml_assertion_id matches issuer and token id", KindSessionRevoked, `{"format":"saml_assertion_id","issuer":"https://idp.example","assertion_id":"tok-1"}`,
			[]Query{alice}, []Query{other(func(q *Query) { q.TokenID = "tok-2" })}},
		{"aliases match on any member", KindAccountDisabled, `{"format":"aliases","identifiers":[{"format":"email","email":"nobody@example.com"},{"format":"iss_sub","iss":"https://idp.example","sub":"u-alice"}]}`,
			[]Query{alice, other(func(q *Query) { q.Email = "nobody@example.com"; q.Subject = "x" })}, []Query{other(func(q *Query) { q.Subject = "u-bob" })}},
		{"session-revoked with opaque matches the session id", KindSessionRevoked, `{"format":"opaque","id":"sess-1"}`,
			[]Query{alice}, []Query{other(func(q *Query) { q.SessionID = "sess-2" })}},
		{"complex user and session applies to that session only", KindSessionRevoked, `{"format":"complex","user":{"format":"iss_sub","iss":"https://idp.example","sub":"u-alice"},"session":{"format":"opaque","id":"sess-1"}}`,
			[]Query{alice}, []Query{other(func(q *Query) { q.SessionID = "sess-2" }), other(func(q *Query) { q.SessionID = "" }), other(func(q *Query) { q.Subject = "u-bob" })}},
		{"complex user and device applies to that user's requests from that device", KindDeviceComplianceChange, `{"format":"complex","user":{"format":"email","email":"alice@example.com"},"device":{"format":"opaque","id":"dev-1"}}`,
			[]Query{alice}, []Query{other(func(q *Query) { q.DeviceID = "dev-2" }), other(func(q *Query) { q.Email = "bob@example.com" })}},
		{"complex device alone applies to every user of the device", KindDeviceComplianceChange, `{"format":"complex","device":{"format":"opaque","id":"dev-1"}}`,
			[]Query{alice, other(func(q *Query) { q.Subject = "u-bob" })}, []Query{other(func(q *Query) { q.DeviceID = "dev-2" })}},
		{"complex tenant applies to the whole tenant", KindSessionRevoked, `{"format":"complex","tenant":{"format":"opaque","id":"ten-1"}}`,
			[]Query{alice}, []Query{other(func(q *Query) { q.Tenant = "ten-2" })}},
		{"complex application applies to the client", KindSessionRevoked, `{"format":"complex","user":{"format":"opaque","id":"u-alice"},"application":{"format":"opaque","id":"app-1"}}`,
			[]Query{alice}, []Query{other(func(q *Query) { q.ClientID = "app-2" })}},
		{"complex group is not a constraint", KindSessionRevoked, `{"format":"complex","user":{"format":"opaque","id":"u-alice"},"group":{"format":"opaque","id":"g"}}`,
			[]Query{alice}, []Query{other(func(q *Query) { q.Subject = "u-bob" })}},
		{"complex members may be aliases", KindSessionRevoked, `{"format":"complex","user":{"format":"aliases","identifiers":[{"format":"email","email":"x@example.com"},{"format":"opaque","id":"u-alice"}]},"session":{"format":"opaque","id":"sess-1"}}`,
			[]Query{alice}, []Query{other(func(q *Query) { q.SessionID = "sess-2" })}},
		{"device-compliance-change with opaque names a device", KindDeviceComplianceChange, `{"format":"opaque","id":"dev-1"}`,
			[]Query{alice}, []Query{other(func(q *Query) { q.DeviceID = "dev-2" })}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub, err := ParseSubject([]byte(tt.subject))
			if err != nil {
				t.Fatal(err)
			}
			sig := Signal{ID: "x", Source: "test", Kind: tt.kind, Subject: sub, EventTime: t0}
			switch tt.kind {
			case KindDeviceComplianceChange:
				sig.Compliant = boolp(false)
			}
			snap, _ := build(t, t0, sig)
			for i, q := range tt.match {
				q.IssuedAt = t0.Add(-time.Hour)
				if isZeroFacts(snap.Facts(q)) {
					t.Errorf("query %d %+v does not match", i, q)
				}
			}
			for i, q := range tt.miss {
				q.IssuedAt = t0.Add(-time.Hour)
				if f := snap.Facts(q); !isZeroFacts(f) {
					t.Errorf("query %d %+v matches: %+v", i, q, f)
				}
			}
		})
	}
}

func TestLongIdentifiersMatch(t *testing.T) {
	long := strings.Repeat("x", 1000)
	sig := Signal{ID: "l", Source: "test", Kind: KindAccountDisabled, EventTime: t0,
		Subject: Subject{Format: FormatIssSub, Iss: idp, Sub: long}}
	snap, _ := build(t, t0, sig)
	q := Query{Issuer: idp, Subject: long, Email: strings.Repeat("E", 400) + "@x", SessionID: long}
	if !snap.Facts(q).Disabled {
		t.Fatal("a key longer than the lookup buffer does not match")
	}
	emailSig := Signal{ID: "m", Source: "test", Kind: KindAccountDisabled, EventTime: t0,
		Subject: Subject{Format: FormatEmail, Email: strings.Repeat("e", 600) + "@x"}}
	snap, _ = build(t, t0, emailSig)
	if !snap.Facts(Query{Subject: long, Email: strings.Repeat("E", 600) + "@X"}).Disabled {
		t.Fatal("a long email does not match case-insensitively")
	}
}
