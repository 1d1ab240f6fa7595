package signal

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/vigil-authz/vigil/internal/state"
)

func FuzzParseSET(f *testing.F) {
	for _, s := range []string{
		// header {"alg":"RS256","typ":"secevent+jwt","kid":"k1"}, a SET payload, a fake signature
		"eyJhbGciOiJSUzI1NiIsInR5cCI6InNlY2V2ZW50K2p3dCIsImtpZCI6ImsxIn0." +
			"eyJpc3MiOiJodHRwczovL3R4IiwianRpIjoiMSIsImlhdCI6MTc2NzIyNTYwMCwiYXVkIjoiYXVkIiwic3ViX2lkIjp7ImZvcm1hdCI6ImVtYWlsIiwiZW1haWwiOiJhQGIifSwiZXZlbnRzIjp7Imh0dHBzOi8vc2NoZW1hcy5vcGVuaWQubmV0L3NlY2V2ZW50L2NhZXAvZXZlbnQtdHlwZS9zZXNzaW9uLXJldm9rZWQiOnt9fX0." +
			"c2ln",
		"eyJhbGciOiJub25lIn0.e30.",
		"a.b.c", "..", "", "e30.e30.e30",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, payload, err := parseJWS([]byte(s), func(string) bool { return true })
		if err != nil {
			var se *SETError
			if !errors.As(err, &se) || se.Code == "" {
				t.Fatalf("parseJWS error %v is not a SETError", err)
			}
			return
		}
		set, err := parseClaims(payload, "https://tx", "aud")
		if err != nil {
			var se *SETError
			if !errors.As(err, &se) {
				t.Fatalf("parseClaims error %v is not a SETError", err)
			}
			return
		}
		if set.JTI == "" || set.EventType == "" || set.Subject.Validate() != nil {
			t.Fatalf("accepted an incomplete SET: %+v", set)
		}
		sig, err := Normalize(set)
		if err == nil && sig.Kind != state.KindIgnored {
			if err := sig.Validate(); err != nil && !strings.Contains(err.Error(), "event_time") {
				t.Fatalf("normalised signal is invalid: %v", err)
			}
		}
	})
}

func FuzzSubjectID(f *testing.F) {
	for _, s := range []string{
		`{"format":"email","email":"a@b"}`,
		`{"format":"iss_sub","iss":"https://i","sub":"u"}`,
		`{"format":"aliases","identifiers":[{"format":"opaque","id":"x"},{"format":"phone_number","phone_number":"+1"}]}`,
		`{"format":"complex","user":{"format":"email","email":"a@b"},"session":{"format":"opaque","id":"s"},"group":{"format":"opaque","id":"g"}}`,
		`{"subject_type":"iss-sub","iss":"i","sub":"s"}`,
		`{"format":"jwt_id","iss":"i","jti":"j"}`,
		`{"format":"complex","user":{"format":"complex"}}`,
		`[]`, `null`, `{"format":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := state.ParseSubject(data)
		if err != nil {
			if !errors.Is(err, state.ErrSubject) {
				t.Fatalf("error %v does not wrap ErrSubject", err)
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("parsed subject is invalid: %v", err)
		}
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		again, err := state.ParseSubject(b)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		if again.String() != s.String() {
			t.Fatalf("round trip changed %s into %s", s, again)
		}
	})
}
