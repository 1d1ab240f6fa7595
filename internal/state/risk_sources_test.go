package state

import (
	"testing"
	"time"
)

// TestRiskSourcesAreKeptApart checks that Vigil's own risk engine and other
// sources (identity providers, operators) each replace only their own risk
// level, and that decisions see the highest.
func TestRiskSourcesAreKeptApart(t *testing.T) {
	risk := func(source, level string, at time.Time, id string) Signal {
		return Signal{ID: id, Source: source, Kind: KindRiskLevelChange, Subject: issSub("alice"),
			EventTime: at, Received: at, Risk: &RiskChange{Level: level}}
	}
	q := Query{Issuer: idp, Subject: "alice"}
	cases := []struct {
		name string
		sigs []Signal
		want string
	}{
		{"the engine lowering its level does not clear an IdP's HIGH",
			[]Signal{risk("ssf:"+idp, RiskHigh, t0, "a"), risk(SourceRisk, RiskMedium, t0.Add(time.Second), "b"), risk(SourceRisk, RiskLow, t0.Add(2*time.Second), "c")}, RiskHigh},
		{"an IdP lowering its level does not clear the engine's HIGH",
			[]Signal{risk(SourceRisk, RiskHigh, t0, "a"), risk("ssf:"+idp, RiskLow, t0.Add(time.Second), "b")}, RiskHigh},
		{"each source replaces its own level",
			[]Signal{risk("ssf:"+idp, RiskHigh, t0, "a"), risk("ssf:"+idp, RiskLow, t0.Add(time.Second), "b"), risk(SourceRisk, RiskMedium, t0.Add(2*time.Second), "c")}, RiskMedium},
		{"an operator can clear an IdP's level",
			[]Signal{risk("ssf:"+idp, RiskHigh, t0, "a"), risk("admin", RiskLow, t0.Add(time.Second), "b")}, RiskLow},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			snap, _ := build(t, t0.Add(time.Minute), tc.sigs...)
			if got := snap.Facts(q).Risk.Level; got != tc.want {
				t.Fatalf("risk level %q, want %q", got, tc.want)
			}
		})
	}
}
