package policytest_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/vigil-authz/vigil/internal/policytest"
)

func mustDecimal(t *testing.T, s string) types.Decimal {
	t.Helper()
	d, err := types.ParseDecimal(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestToCedarConvertsJSONValues(t *testing.T) {
	ip, _ := types.ParseIPAddr("10.0.0.1")
	dt, _ := types.ParseDatetime("2026-01-01T00:00:00Z")
	dur, _ := types.ParseDuration("1h30m")
	tests := []struct {
		name string
		in   any
		want types.Value
	}{
		{"a string becomes a String", "hi", types.String("hi")},
		{"a boolean becomes a Boolean", true, types.Boolean(true)},
		{"an int becomes a Long", 42, types.Long(42)},
		{"a negative int64 becomes a Long", int64(-7), types.Long(-7)},
		{"a uint64 that fits becomes a Long", uint64(math.MaxInt64), types.Long(math.MaxInt64)},
		{"a whole float64 becomes a Long", 3.0, types.Long(3)},
		{"a fractional float64 becomes a decimal", 1.5, mustDecimal(t, "1.5")},
		{"a float64 with four decimals becomes an exact decimal", 0.1234, mustDecimal(t, "0.1234")},
		{"a negative fraction becomes a decimal", -0.25, mustDecimal(t, "-0.25")},
		{"a json.Number integer becomes a Long", json.Number("9007199254740993"), types.Long(9007199254740993)},
		{"a json.Number fraction becomes a decimal", json.Number("10.50"), mustDecimal(t, "10.5")},
		{"a json.Number with an exponent that is whole becomes a Long", json.Number("1e3"), types.Long(1000)},
		{"a json.Number with a negative exponent becomes a decimal", json.Number("25e-2"), mustDecimal(t, "0.25")},
		{"an array becomes a Set", []any{"a", "b", "a"}, types.NewSet(types.String("a"), types.String("b"))},
		{"a typed slice becomes a Set", []string{"x"}, types.NewSet(types.String("x"))},
		{"an empty array becomes an empty Set", []any{}, types.NewSet()},
		{"an object becomes a Record", map[string]any{"a": 1, "b": map[string]any{"c": true}},
			types.NewRecord(types.RecordMap{"a": types.Long(1), "b": types.NewRecord(types.RecordMap{"c": types.True})})},
		{"an implicit {type, id} object stays a Record", map[string]any{"type": "User", "id": "a"},
			types.NewRecord(types.RecordMap{"type": types.String("User"), "id": types.String("a")})},
		{"__entity becomes an entity reference", map[string]any{"__entity": map[string]any{"type": "Api::User", "id": "a"}}, types.NewEntityUID("Api::User", "a")},
		{"__extn ip becomes an ipaddr", map[string]any{"__extn": map[string]any{"fn": "ip", "arg": "10.0.0.1"}}, ip},
		{"__extn decimal becomes a decimal", map[string]any{"__extn": map[string]any{"fn": "decimal", "arg": "1.2345"}}, mustDecimal(t, "1.2345")},
		{"__extn datetime becomes a datetime", map[string]any{"__extn": map[string]any{"fn": "datetime", "arg": "2026-01-01T00:00:00Z"}}, dt},
		{"__extn duration becomes a duration", map[string]any{"__extn": map[string]any{"fn": "duration", "arg": "1h30m"}}, dur},
		{"a time.Time becomes a datetime", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), dt},
		{"a Cedar value passes through", types.Long(5), types.Long(5)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := policytest.ToCedar(tt.in)
			if err != nil {
				t.Fatalf("ToCedar(%#v): %v", tt.in, err)
			}
			if !got.Equal(tt.want) {
				t.Errorf("ToCedar(%#v) = %v (%T), want %v (%T)", tt.in, got, got, tt.want, tt.want)
			}
		})
	}
}

func TestToCedarRejectsWhatCedarCannotHold(t *testing.T) {
	deep := any("x")
	for range policytest.MaxDepth + 2 {
		deep = []any{deep}
	}
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"null is rejected", nil, "null has no Cedar equivalent"},
		{"null inside a record names its path", map[string]any{"a": map[string]any{"b c": nil}}, `a."b c": null has no Cedar equivalent`},
		{"null inside a set names its index", map[string]any{"xs": []any{1, nil}}, "xs[1]: null"},
		{"a uint64 beyond Long is rejected", uint64(math.MaxUint64), "does not fit in a Long"},
		{"a json.Number beyond Long is rejected", json.Number("9223372036854775808"), "does not fit in a Long"},
		{"five decimal digits are rejected", 1.00001, "more than four digits after the point"},
		{"a decimal beyond range is rejected", json.Number("922337203685478.5"), "outside the range of a Cedar decimal"},
		{"a huge exponent is rejected without expanding it", json.Number("1e999999999"), "outside the range"},
		{"NaN is rejected", math.NaN(), "no Cedar equivalent"},
		{"a malformed json.Number is rejected", json.Number("1/3"), "is not a number"},
		{"__entity with other keys is rejected", map[string]any{"__entity": map[string]any{"type": "U", "id": "a"}, "x": 1}, "must have no other keys"},
		{"__entity without an id is rejected", map[string]any{"__entity": map[string]any{"type": "U"}}, `needs "id"`},
		{"__entity with a bad type is rejected", map[string]any{"__entity": map[string]any{"type": "U-1", "id": "a"}}, "invalid entity type"},
		{"__extn with an unknown function is rejected", map[string]any{"__extn": map[string]any{"fn": "sqrt", "arg": "4"}}, `unknown extension function "sqrt"`},
		{"__extn with a bad argument is rejected", map[string]any{"__extn": map[string]any{"fn": "ip", "arg": "not-an-ip"}}, `ip("not-an-ip")`},
		{"__extn with a non-string argument is rejected", map[string]any{"__extn": map[string]any{"fn": "decimal", "arg": 1.5}}, `"arg" must be a string`},
		{"bytes are rejected", []byte("x"), "no Cedar equivalent"},
		{"non-string map keys are rejected", map[int]any{1: "a"}, "keys must be strings"},
		{"nesting past MaxDepth is rejected", deep, "levels deep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := policytest.ToCedar(tt.in)
			if err == nil {
				t.Fatalf("ToCedar(%#v) = %v, want an error", tt.in, got)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestToRecord(t *testing.T) {
	r, err := policytest.ToRecord(nil)
	if err != nil || r.Len() != 0 {
		t.Errorf("ToRecord(nil) = %v, %v; want the empty record", r, err)
	}
	if _, err := policytest.ToRecord([]any{1}); err == nil || !strings.Contains(err.Error(), "want an object") {
		t.Errorf("ToRecord of an array: %v", err)
	}
	if _, err := policytest.ToRecord(map[string]any{"__entity": map[string]any{"type": "U", "id": "a"}}); err == nil {
		t.Error("ToRecord of an entity reference should fail")
	}
}

func TestParseUID(t *testing.T) {
	tests := []struct {
		in      string
		want    types.EntityUID
		wantErr bool
	}{
		{`User::"alice"`, types.NewEntityUID("User", "alice"), false},
		{`Api::Document::"a \"quoted\" id"`, types.NewEntityUID("Api::Document", `a "quoted" id`), false},
		{`Action::"GET /documents/{id}"`, types.NewEntityUID("Action", "GET /documents/{id}"), false},
		{`User::alice`, types.EntityUID{}, true},
		{`User:"alice"`, types.EntityUID{}, true},
		{`"alice"`, types.EntityUID{}, true},
		{`User::"alice" extra`, types.EntityUID{}, true},
		{``, types.EntityUID{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := policytest.ParseUID(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseUID(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseUID(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
