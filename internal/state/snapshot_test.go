package state

import (
	"hash/maphash"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

const idp = "https://idp.example"

func issSub(sub string) Subject { return Subject{Format: FormatIssSub, Iss: idp, Sub: sub} }

func boolp(b bool) *bool { return &b }
func intp(i int) *int    { return &i }

// build applies signals in order (seq 1, 2, ...) at time now and freezes.
func build(t testing.TB, now time.Time, sigs ...Signal) (*Snapshot, *builder) {
	t.Helper()
	b := newBuilder(maphash.MakeSeed(), 48*time.Hour)
	for i := range sigs {
		if err := sigs[i].Validate(); err != nil {
			t.Fatalf("signal %d: %v", i, err)
		}
		if err := b.apply(&sigs[i], uint64(i+1), now); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
	}
	return b.freeze(), b
}

func TestEachKindAffectsFacts(t *testing.T) {
	alice := Query{Issuer: idp, Subject: "alice", IssuedAt: t0.Add(-time.Hour)}
	after := t0.Add(time.Minute)
	tests := []struct {
		name  string
		sig   Signal
		check func(t *testing.T, f Facts)
	}{
		{"session-revoked rejects tokens issued before it", Signal{Kind: KindSessionRevoked}, func(t *testing.T, f Facts) {
			wantRevoked(t, f, true)
		}},
		{"credential-change revoke rejects earlier tokens", Signal{Kind: KindCredentialChange, CredentialType: "password", ChangeType: "update"}, func(t *testing.T, f Facts) {
			wantRevoked(t, f, true)
		}},
		{"credential-compromise rejects earlier tokens", Signal{Kind: KindCredentialCompromise, CredentialType: "password"}, func(t *testing.T, f Facts) {
			wantRevoked(t, f, true)
		}},
		{"credential-change-required rejects earlier tokens", Signal{Kind: KindCredentialChangeRequired}, func(t *testing.T, f Facts) {
			wantRevoked(t, f, true)
		}},
		{"account-disabled denies every token", Signal{Kind: KindAccountDisabled, Reason: "hijacking"}, func(t *testing.T, f Facts) {
			if !f.Disabled {
				t.Fatal("not disabled")
			}
			if deny, reason, at := f.Guard(after); !deny || !at.IsZero() || reason == "" {
				t.Fatalf("guard = %v %q %v, want deny without revokedAt", deny, reason, at)
			}
		}},
		{"account-enabled alone changes nothing", Signal{Kind: KindAccountEnabled}, func(t *testing.T, f Facts) {
			if deny, _, _ := f.Guard(t0.Add(-time.Hour)); deny {
				t.Fatal("denied")
			}
		}},
		{"account-purged denies for ever", Signal{Kind: KindAccountPurged}, func(t *testing.T, f Facts) {
			if !f.Purged {
				t.Fatal("not purged")
			}
			if deny, _, _ := f.Guard(after); !deny {
				t.Fatal("allowed")
			}
		}},
		{"token-claims-change overrides claims of earlier tokens", Signal{Kind: KindTokenClaimsChange, Claims: map[string]any{"role": "viewer"}}, func(t *testing.T, f Facts) {
			if f.ClaimOverrides["role"] != "viewer" {
				t.Fatalf("overrides = %v", f.ClaimOverrides)
			}
			wantRevoked(t, f, false)
		}},
		{"assurance-level-change records the level", Signal{Kind: KindAssuranceLevelChange, Namespace: "NIST-AAL", CurrentLevel: "nist-aal1"}, func(t *testing.T, f Facts) {
			if f.Assurance == nil || f.Assurance.Level != "nist-aal1" || f.Assurance.Namespace != "NIST-AAL" || !f.Assurance.Time.Equal(t0) {
				t.Fatalf("assurance = %+v", f.Assurance)
			}
		}},
		{"device-compliance-change records compliance", Signal{Kind: KindDeviceComplianceChange, Compliant: boolp(false)}, func(t *testing.T, f Facts) {
			if f.DeviceCompliant == nil || *f.DeviceCompliant {
				t.Fatalf("device compliant = %v", f.DeviceCompliant)
			}
			if deny, _, _ := f.Guard(after); deny {
				t.Fatal("non-compliance is for policies, not guards")
			}
		}},
		{"risk-level-change records level, score and reasons", Signal{Kind: KindRiskLevelChange, Risk: &RiskChange{Level: RiskHigh, Reasons: []string{"impossible travel"}}}, func(t *testing.T, f Facts) {
			if f.Risk.Level != RiskHigh || f.Risk.Score != 80 || !slices.Equal(f.Risk.Reasons, []string{"impossible travel"}) {
				t.Fatalf("risk = %+v", f.Risk)
			}
		}},
		{"risk-level-change keeps an explicit score", Signal{Kind: KindRiskLevelChange, Risk: &RiskChange{Level: RiskMedium, Score: intp(63)}}, func(t *testing.T, f Facts) {
			if f.Risk.Score != 63 {
				t.Fatalf("risk = %+v", f.Risk)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig := tt.sig
			sig.ID, sig.Source, sig.EventTime, sig.Received = "s1", "admin", t0, t0
			sig.Subject = issSub("alice")
			snap, _ := build(t, t0, sig)
			f := snap.Facts(alice)
			if f.Seq != 1 {
				t.Fatalf("seq = %d", f.Seq)
			}
			tt.check(t, f)
			if other := snap.Facts(Query{Issuer: idp, Subject: "bob"}); !isZeroFacts(other) {
				t.Fatalf("bob got %+v", other)
			}
		})
	}
}

func wantRevoked(t *testing.T, f Facts, want bool) {
	t.Helper()
	deny, reason, at := f.Guard(t0.Add(-time.Hour))
	if deny != want {
		t.Fatalf("guard for an earlier token = %v (%q), want %v", deny, reason, want)
	}
	if !want {
		return
	}
	if !at.Equal(t0) || !f.RevokedBefore.Equal(t0) {
		t.Fatalf("revokedAt = %v, RevokedBefore = %v, want %v", at, f.RevokedBefore, t0)
	}
	if deny, _, _ := f.Guard(t0); deny {
		t.Fatal("token issued at the revocation time is denied")
	}
	if deny, _, _ := f.Guard(time.Time{}); !deny {
		t.Fatal("token without iat passes a revocation")
	}
}

func isZeroFacts(f Facts) bool {
	f.Seq = 0
	return f.RevokedBefore.IsZero() && !f.Disabled && !f.Purged && f.ClaimOverrides == nil &&
		f.Assurance == nil && f.DeviceCompliant == nil && f.Risk.Level == ""
}

func TestOutOfOrderSignals(t *testing.T) {
	s := func(id string, kind Kind, at time.Time) Signal {
		return Signal{ID: id, Source: "admin", Kind: kind, EventTime: at, Received: t0, Subject: issSub("alice")}
	}
	q := Query{Issuer: idp, Subject: "alice"}
	t.Run("an older enable arriving after a newer disable leaves the account disabled", func(t *testing.T) {
		snap, b := build(t, t0, s("d", KindAccountDisabled, t0), s("e", KindAccountEnabled, t0.Add(-time.Minute)))
		if !snap.Facts(q).Disabled {
			t.Fatal("enabled by a stale signal")
		}
		if g := b.takeGarbage(); !slices.Equal(g, []uint64{2}) {
			t.Fatalf("garbage = %v, want the stale record 2", g)
		}
	})
	t.Run("a newer enable lifts the disable and supersedes its record", func(t *testing.T) {
		snap, b := build(t, t0, s("d", KindAccountDisabled, t0), s("e", KindAccountEnabled, t0.Add(time.Minute)))
		if snap.Facts(q).Disabled {
			t.Fatal("still disabled")
		}
		if g := b.takeGarbage(); !slices.Equal(g, []uint64{1}) {
			t.Fatalf("garbage = %v, want the superseded record 1", g)
		}
	})
	t.Run("the newest revocation wins whatever the arrival order", func(t *testing.T) {
		snap, _ := build(t, t0, s("a", KindSessionRevoked, t0.Add(-time.Minute)), s("b", KindSessionRevoked, t0.Add(-2*time.Hour)))
		if got := snap.Facts(q).RevokedBefore; !got.Equal(t0.Add(-time.Minute)) {
			t.Fatalf("RevokedBefore = %v", got)
		}
	})
	t.Run("a claim changed later wins over one changed earlier", func(t *testing.T) {
		c1 := s("a", KindTokenClaimsChange, t0)
		c1.Claims = map[string]any{"role": "new"}
		c2 := s("b", KindTokenClaimsChange, t0.Add(-time.Minute))
		c2.Claims = map[string]any{"role": "old", "dept": "x"}
		snap, _ := build(t, t0, c1, c2)
		got := snap.Facts(q).ClaimOverrides
		if got["role"] != "new" || got["dept"] != "x" {
			t.Fatalf("overrides = %v", got)
		}
		if o := snap.Facts(Query{Issuer: idp, Subject: "alice", IssuedAt: t0.Add(-30 * time.Second)}).ClaimOverrides; o["dept"] != nil || o["role"] != "new" {
			t.Fatalf("token issued between the changes got %v", o)
		}
		if o := snap.Facts(Query{Issuer: idp, Subject: "alice", IssuedAt: t0.Add(time.Second)}).ClaimOverrides; o != nil {
			t.Fatalf("token issued after the changes got %v", o)
		}
	})
	t.Run("purge is permanent", func(t *testing.T) {
		snap, b := build(t, t0, s("p", KindAccountPurged, t0), s("e", KindAccountEnabled, t0.Add(time.Hour)))
		if deny, _, _ := snap.Facts(q).Guard(t0.Add(2 * time.Hour)); !deny {
			t.Fatal("purged account allowed after account-enabled")
		}
		if g := b.takeGarbage(); len(g) != 0 {
			t.Fatalf("garbage = %v; both records still set a fact", g)
		}
	})
	t.Run("the highest risk among subjects wins", func(t *testing.T) {
		u := s("u", KindRiskLevelChange, t0)
		u.Risk = &RiskChange{Level: RiskHigh, Principal: "USER"}
		d := s("d", KindRiskLevelChange, t0.Add(time.Minute))
		d.Risk = &RiskChange{Level: RiskLow, Principal: "DEVICE"}
		d.Subject = Subject{Format: FormatOpaque, ID: "dev-1"}
		snap, _ := build(t, t0, u, d)
		if got := snap.Facts(Query{Issuer: idp, Subject: "alice", DeviceID: "dev-1"}).Risk.Level; got != RiskHigh {
			t.Fatalf("risk = %q", got)
		}
	})
}

func TestExpiry(t *testing.T) {
	rev := Signal{ID: "r", Source: "admin", Kind: KindSessionRevoked, EventTime: t0, Subject: issSub("alice")}
	dis := Signal{ID: "d", Source: "admin", Kind: KindAccountDisabled, EventTime: t0, Subject: issSub("bob")}
	q := func(sub string) Query { return Query{Issuer: idp, Subject: sub} }
	_, b := build(t, t0, rev, dis)
	b.sweep(t0.Add(47*time.Hour), 0, numShards)
	if snap := b.freeze(); snap.Facts(q("alice")).RevokedBefore.IsZero() {
		t.Fatal("revocation dropped before the retention")
	}
	b.sweep(t0.Add(49*time.Hour), 0, numShards)
	snap := b.freeze()
	if !snap.Facts(q("alice")).RevokedBefore.IsZero() {
		t.Fatal("revocation kept past the retention")
	}
	if !snap.Facts(q("bob")).Disabled {
		t.Fatal("a disabled account expired")
	}
	if snap.Len() != 1 {
		t.Fatalf("tracked keys = %d, want 1", snap.Len())
	}
	t.Run("a revocation already older than the retention is not recorded", func(t *testing.T) {
		old := rev
		old.EventTime = t0.Add(-72 * time.Hour)
		snap, _ := build(t, t0, old)
		if snap.Len() != 0 {
			t.Fatalf("tracked keys = %d", snap.Len())
		}
	})
}

func TestSnapshotsAreImmutable(t *testing.T) {
	b := newBuilder(maphash.MakeSeed(), 48*time.Hour)
	sig := Signal{ID: "a", Source: "admin", Kind: KindAccountDisabled, EventTime: t0, Subject: issSub("alice")}
	if err := b.apply(&sig, 1, t0); err != nil {
		t.Fatal(err)
	}
	first := b.freeze()
	en := Signal{ID: "b", Source: "admin", Kind: KindAccountEnabled, EventTime: t0.Add(time.Second), Subject: issSub("alice")}
	if err := b.apply(&en, 2, t0); err != nil {
		t.Fatal(err)
	}
	second := b.freeze()
	q := Query{Issuer: idp, Subject: "alice"}
	if !first.Facts(q).Disabled || second.Facts(q).Disabled {
		t.Fatalf("first disabled=%v second disabled=%v", first.Facts(q).Disabled, second.Facts(q).Disabled)
	}
}
