package engine

import (
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/vigil-authz/vigil/internal/state"
)

func TestMergeFacts(t *testing.T) {
	compliant := false
	at := time.Unix(1767225600, 0)
	caller := types.NewRecord(types.RecordMap{
		"risk":   types.NewRecord(types.RecordMap{"level": types.String("LOW"), "extra": types.String("kept")}),
		"device": types.NewRecord(types.RecordMap{"id": types.String("laptop-7"), "compliant": types.True}),
		"other":  types.String("untouched"),
	})
	t.Run("live state wins over the caller and keeps the rest", func(t *testing.T) {
		got := MergeFacts(caller, state.Facts{
			DeviceCompliant: &compliant, DeviceTime: at,
			Risk:      state.RiskFact{Score: 80, Level: "HIGH", Reasons: []string{"impossible travel"}, Time: at},
			Assurance: &state.Assurance{Namespace: "NIST-AAL", Level: "AAL2", Time: at},
		}).Map()
		risk := got["risk"].(types.Record).Map()
		if risk["level"] != types.String("HIGH") || risk["score"] != types.Long(80) || risk["extra"] != types.String("kept") {
			t.Fatalf("risk: %v", risk)
		}
		dev := got["device"].(types.Record).Map()
		if dev["compliant"] != types.False || dev["id"] != types.String("laptop-7") {
			t.Fatalf("device: %v", dev)
		}
		if got["session"].(types.Record).Map()["assurance"] != types.String("AAL2") || got["other"] != types.String("untouched") {
			t.Fatalf("context: %v", got)
		}
	})
	t.Run("without facts the caller's values stay and risk gets neutral defaults", func(t *testing.T) {
		got := MergeFacts(types.Record{}, state.Facts{}).Map()
		risk := got["risk"].(types.Record).Map()
		if risk["level"] != types.String("LOW") || risk["score"] != types.Long(0) {
			t.Fatalf("risk: %v", risk)
		}
		kept := MergeFacts(caller, state.Facts{}).Map()["risk"].(types.Record).Map()
		if kept["level"] != types.String("LOW") || kept["extra"] != types.String("kept") {
			t.Fatalf("risk: %v", kept)
		}
	})
}

func TestOverrideClaims(t *testing.T) {
	uid := types.NewEntityUID("User", "alice")
	ents := types.EntityMap{uid: {UID: uid, Attributes: types.NewRecord(types.RecordMap{"dept": types.String("eng"), "level": types.Long(1)})}}
	got := OverrideClaims(ents, uid, map[string]any{"dept": "sales", "level": nil, "groups": []any{"a", "b"}})
	attrs := got[uid].Attributes.Map()
	if attrs["dept"] != types.String("sales") || attrs["groups"] == nil {
		t.Fatalf("attrs: %v", attrs)
	}
	if _, ok := attrs["level"]; ok {
		t.Fatal("a null claim removes the attribute")
	}
	if ents[uid].Attributes.Map()["dept"] != types.String("eng") {
		t.Fatal("the input must not be modified")
	}
	if other := OverrideClaims(ents, types.NewEntityUID("User", "bob"), map[string]any{"x": "y"}); len(other) != 1 {
		t.Fatal("an absent principal leaves the entities unchanged")
	}
}
