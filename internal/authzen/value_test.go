package authzen

import (
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/vigil-authz/vigil/internal/decision"
)

func mustDecimal(t *testing.T, s string) types.Decimal {
	t.Helper()
	d, err := types.ParseDecimal(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestNumberValue(t *testing.T) {
	tests := []struct {
		lit  string
		want types.Value // nil = error
		err  string
	}{
		{"0", types.Long(0), ""},
		{"-0", types.Long(0), ""},
		{"42", types.Long(42), ""},
		{"-42", types.Long(-42), ""},
		{"9223372036854775807", types.Long(9223372036854775807), ""},
		{"-9223372036854775808", types.Long(-9223372036854775808), ""},
		{"9223372036854775808", nil, "outside the range of a Cedar Long"},
		{"-9223372036854775809", nil, "outside the range of a Cedar Long"},
		{"123456789012345678901234567890", nil, "outside the range of a Cedar Long"},
		{"1.0", types.Long(1), ""},
		{"2.50", nil, ""}, // decimal, checked below
		{"1e3", types.Long(1000), ""},
		{"1E+3", types.Long(1000), ""},
		{"15e-1", nil, ""},
		{"100e-2", types.Long(1), ""},
		{"-0.0", types.Long(0), ""},
		{"0e999999999999", types.Long(0), ""},
		{"1e18", types.Long(1_000_000_000_000_000_000), ""},
		{"1e19", nil, "outside the range of a Cedar Long"},
		{"1e999999999999", nil, "outside the range"},
		{"0.12345", nil, "more than 4 decimal places"},
		{"1e-999999999999", nil, "more than 4 decimal places"},
		{"922337203685477.5807", nil, ""},
		{"922337203685477.5808", nil, "outside the range of a Cedar decimal"},
		{"-922337203685477.5808", nil, ""},
		{"1000000000000000.1", nil, "outside the range of a Cedar decimal"},
	}
	decimals := map[string]string{"2.50": "2.5", "15e-1": "1.5", "922337203685477.5807": "922337203685477.5807", "-922337203685477.5808": "-922337203685477.5808"}
	for _, tt := range tests {
		t.Run(tt.lit+" converts exactly or fails clearly", func(t *testing.T) {
			got, err := numberValue(tt.lit)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, %v; want error containing %q", got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if d, ok := decimals[tt.lit]; ok {
				want = mustDecimal(t, d)
			}
			if !got.Equal(want) {
				t.Fatalf("got %T %v, want %T %v", got, got, want, want)
			}
		})
	}
}

func TestDecodeValue(t *testing.T) {
	ip, _ := types.ParseIPAddr("192.168.0.0/16")
	dt, _ := types.ParseDatetime("2025-06-01T12:00:00Z")
	du, _ := types.ParseDuration("1h30m")
	tests := []struct {
		name string
		json string
		want types.Value
		err  string
	}{
		{"a string is a String", `"x"`, types.String("x"), ""},
		{"a boolean is a Boolean", `false`, types.Boolean(false), ""},
		{"an array is a Set without duplicates or nulls", `[1, 1, null, "a"]`, types.NewSet(types.Long(1), types.String("a")), ""},
		{"an object is a Record without null members", `{"a":1,"b":null,"c":{"d":[]}}`,
			types.NewRecord(types.RecordMap{"a": types.Long(1), "c": types.NewRecord(types.RecordMap{"d": types.NewSet()})}), ""},
		{"__entity is an entity reference", `{"__entity":{"type":"Acme::User","id":"alice"}}`, types.NewEntityUID("Acme::User", "alice"), ""},
		{"__extn ip is an IP address", `{"__extn":{"fn":"ip","arg":"192.168.0.0/16"}}`, ip, ""},
		{"__extn decimal is a Decimal", `{"__extn":{"fn":"decimal","arg":"-1.25"}}`, mustDecimal(t, "-1.25"), ""},
		{"__extn datetime is a datetime", `{"__extn":{"fn":"datetime","arg":"2025-06-01T12:00:00Z"}}`, dt, ""},
		{"__extn duration is a duration", `{"__extn":{"fn":"duration","arg":"1h30m"}}`, du, ""},
		{"implicit {type,id} stays a record", `{"type":"User","id":"a"}`,
			types.NewRecord(types.RecordMap{"type": types.String("User"), "id": types.String("a")}), ""},
		{"null is absent", `null`, nil, ""},
		{"a missing entity id is named", `{"__entity":{"type":"User"}}`, nil, "value.__entity.id: must be a string"},
		{"a non-object __extn is named", `{"__extn":"ip"}`, nil, "value.__extn: must be an object"},
		{"a non-string extension argument is named", `{"__extn":{"fn":"ip","arg":1}}`, nil, "value.__extn.arg: must be a string"},
		{"a bad datetime is named", `{"__extn":{"fn":"datetime","arg":"yesterday"}}`, nil, `value.__extn.arg: "yesterday" is not a valid datetime`},
		{"nested errors carry the whole path", `{"a":[{"b":{"c":1.00001}}]}`, nil, "value.a[0].b.c: number 1.00001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeValue([]byte(tt.json), 0)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, %v; want error containing %q", got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (tt.want == nil) || (got != nil && !got.Equal(tt.want)) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("the depth limit applies", func(t *testing.T) {
		if _, err := DecodeValue([]byte(`[[[[1]]]]`), 3); err == nil || !strings.Contains(err.Error(), "deeper than 3") {
			t.Fatalf("err %v", err)
		}
		if _, err := DecodeValue([]byte(`[[[1]]]`), 3); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRequestMapping(t *testing.T) {
	snap := todoSnapshot(t)
	h := New(Options{Views: viewsOf(snap).View})
	parse := func(t *testing.T, body string) decision.Request {
		t.Helper()
		var p parser
		n, err := p.decode(bufferOf(body), 32)
		if err != nil {
			t.Fatal(err)
		}
		in, err := h.parseEval(&n, nil, snap.Entities, false)
		if err != nil {
			t.Fatal(err)
		}
		req, err := in.request()
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	t.Run("the subject id becomes the live-state identity", func(t *testing.T) {
		req := parse(t, `{"subject":{"type":"user","id":"`+pidBeth+`"},"action":{"name":"can_read_todos"},"resource":{"type":"todo","id":"x"}}`)
		if req.Identity == nil || req.Identity.Subject != pidBeth {
			t.Fatalf("identity %+v", req.Identity)
		}
		if req.Principal != types.NewEntityUID("user", pidBeth) || req.Action != types.NewEntityUID("Action", "can_read_todos") || len(req.Entities) != 0 {
			t.Fatalf("%+v", req)
		}
	})
	t.Run("properties overlay stored attributes and keep parents", func(t *testing.T) {
		req := parse(t, `{"subject":{"type":"user","id":"`+pidBeth+`","properties":{"email":"new@x","team":"blue"}},"action":{"name":"a"},"resource":{"type":"todo","id":"x"}}`)
		e := req.Entities[types.NewEntityUID("user", pidBeth)]
		if v, _ := e.Attributes.Get("email"); v != types.String("new@x") {
			t.Fatalf("email %v", v)
		}
		if v, _ := e.Attributes.Get("name"); v != types.String("Beth Smith") {
			t.Fatalf("stored name lost: %v", v)
		}
		if v, _ := e.Attributes.Get("team"); v != types.String("blue") {
			t.Fatalf("team %v", v)
		}
		if !e.Parents.Contains(types.NewEntityUID("Role", "viewer")) {
			t.Fatalf("parents lost: %v", e.Parents)
		}
	})
	t.Run("action properties become context.action", func(t *testing.T) {
		req := parse(t, `{"subject":{"type":"user","id":"u"},"action":{"name":"a","properties":{"method":"GET"}},"resource":{"type":"todo","id":"x"},"context":{"ip":"1.2.3.4"}}`)
		a, ok := req.Context.Get("action")
		if !ok || !a.Equal(types.NewRecord(types.RecordMap{"method": types.String("GET")})) {
			t.Fatalf("context %v", req.Context)
		}
		if v, _ := req.Context.Get("ip"); v != types.String("1.2.3.4") {
			t.Fatalf("context %v", req.Context)
		}
	})
	t.Run("one entity as subject and resource gets both property sets", func(t *testing.T) {
		req := parse(t, `{"subject":{"type":"user","id":"`+pidBeth+`","properties":{"a":1,"b":1}},"action":{"name":"a"},"resource":{"type":"user","id":"`+pidBeth+`","properties":{"b":2}}}`)
		e := req.Entities[types.NewEntityUID("user", pidBeth)]
		a, _ := e.Attributes.Get("a")
		b, _ := e.Attributes.Get("b")
		n, _ := e.Attributes.Get("name")
		if a != types.Long(1) || b != types.Long(2) || n != types.String("Beth Smith") || len(req.Entities) != 1 {
			t.Fatalf("%v", e.Attributes)
		}
	})
}
