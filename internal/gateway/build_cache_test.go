package gateway

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/vigil-authz/vigil/internal/decision"
	"github.com/vigil-authz/vigil/internal/engine"
	"github.com/vigil-authz/vigil/internal/identity"
	"github.com/vigil-authz/vigil/internal/policy"
	"github.com/vigil-authz/vigil/internal/route"
)

// The gateway reuses what it built for earlier requests of the same token
// (principal entity per policy snapshot, signal and parameter records).
// Every request it builds with those caches must equal the request built
// from scratch.
func TestCachedRequestsEqualFreshOnes(t *testing.T) {
	compile := func(entities string) *policy.Snapshot {
		t.Helper()
		snap, err := policy.Compile(policy.Bundle{Files: []policy.File{
			{Name: "p.cedar", Data: []byte(`permit (principal in Role::"member", action, resource);`)},
			{Name: "e.entities.json", Data: []byte(entities)},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	stored := compile(`[{"uid":{"type":"User","id":"alice"},"attrs":{"dept":"eng"},"parents":[{"type":"Group","id":"g1"}]}]`)
	moved := compile(`[{"uid":{"type":"User","id":"alice"},"attrs":{"dept":"ops"},"parents":[{"type":"Group","id":"g2"}]}]`)
	absent := compile(`[{"uid":{"type":"User","id":"bob"},"attrs":{},"parents":[]}]`)

	tok := &identity.Token{Issuer: "https://iss", Subject: "alice", SessionID: "s1", ACR: "pwd", JTI: "j1",
		Roles: []string{"member"}, PrincipalType: "User", RoleType: "Role",
		IssuedAt: time.Unix(100, 0), Expiry: time.Unix(2e9, 0),
		Claims: map[string]any{"sub": "alice", "email": "alice@example.com", "dept": "claims"}}
	base := call{
		method: "GET", path: "/todos/1", host: "api.example", scheme: "https",
		ip: netip.MustParseAddr("198.51.100.2"), token: tok,
		match: route.Match{
			Action:   types.NewEntityUID("Action", "GET /todos/{id}"),
			Resource: types.NewEntityUID("Todo", "1"),
			Params:   map[string]string{"id": "1"},
		},
	}
	risky := func(_ engine.View, _ *decision.Request, sig *Signals) {
		sig.Risk = RiskSignals{Score: 80, Level: "HIGH", Reasons: []string{"impossible travel"}, Time: time.Unix(120, 0)}
		sig.Session.Assurance, sig.Session.AssuranceTime = "mfa", time.Unix(110, 0)
		sig.Device.Compliant, sig.Device.ComplianceTime = true, time.Unix(115, 0)
	}
	steps := []struct {
		name   string
		snap   *policy.Snapshot
		enrich EnrichFunc
		change func(c *call)
	}{
		{name: "a stored principal gets the stored attributes and parents", snap: stored},
		{name: "the same request again", snap: stored},
		{name: "a new snapshot changes the stored entity", snap: moved},
		{name: "the old snapshot again", snap: stored},
		{name: "a snapshot without the principal", snap: absent},
		{name: "no snapshot", snap: nil},
		{name: "another path parameter", snap: stored, change: func(c *call) { c.match.Params = map[string]string{"id": "2"} }},
		{name: "two path parameters", snap: stored, change: func(c *call) { c.match.Params = map[string]string{"a": "1", "b": "2"} }},
		{name: "no path parameters", snap: stored, change: func(c *call) { c.match.Params = nil }},
		{name: "live state reports risk, assurance and compliance", snap: stored, enrich: risky},
		{name: "live state reports other values", snap: stored, enrich: func(_ engine.View, _ *decision.Request, sig *Signals) {
			sig.Risk.Level = "MEDIUM"
			sig.Session.Assurance = "hwk"
			sig.Device.Managed = true
		}},
		{name: "live state no longer does", snap: stored},
		{name: "a device and a location", snap: stored, change: func(c *call) {
			c.deviceID, c.geo = "dev-1", Geo{Country: "DE", City: "Berlin"}
		}},
		{name: "another device and location", snap: stored, change: func(c *call) {
			c.deviceID, c.geo = "dev-2", Geo{Country: "FR", City: "Paris"}
		}},
		{name: "an anonymous request", snap: stored, change: func(c *call) { c.token = nil }},
	}
	facts := newFactCache(16)
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			c := base
			if st.change != nil {
				st.change(&c)
			}
			v := engine.View{Policies: st.snap}
			now := time.Unix(150, 0)
			got := buildRequest(v, &c, now, st.enrich, facts)
			want := buildRequest(v, &c, now, st.enrich, nil)
			if g, w := requestJSON(t, got), requestJSON(t, want); g != w {
				t.Errorf("cached build =\n%s\nwant\n%s", g, w)
			}
		})
	}

	t.Run("the principal follows the snapshot it is decided with", func(t *testing.T) {
		tf := facts.get(tok)
		uid := types.NewEntityUID("User", "alice")
		for _, tc := range []struct {
			snap       *policy.Snapshot
			dept       string
			parent     types.EntityUID
			wantParent bool
		}{
			{stored, "claims", types.NewEntityUID("Group", "g1"), true},
			{moved, "claims", types.NewEntityUID("Group", "g2"), true},
			{stored, "claims", types.NewEntityUID("Group", "g2"), false},
		} {
			e := tf.entities(engine.View{Policies: tc.snap})[uid]
			if v, _ := e.Attributes.Get("dept"); !v.Equal(types.String(tc.dept)) {
				t.Errorf("dept = %v, want the claim %q", v, tc.dept)
			}
			if e.Parents.Contains(tc.parent) != tc.wantParent {
				t.Errorf("parents = %v; want %v present: %v", e.Parents, tc.parent, tc.wantParent)
			}
		}
	})
}

func requestJSON(t *testing.T, req decision.Request) string {
	t.Helper()
	ctx, err := json.Marshal(req.Context)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := json.Marshal(req.Entities)
	if err != nil {
		t.Fatal(err)
	}
	id, err := json.Marshal(req.Identity)
	if err != nil {
		t.Fatal(err)
	}
	return canon(t, string(ctx)) + "\n" + canon(t, string(ents)) + "\n" + string(id) + "\n" + req.Principal.String()
}

func TestRequestLogWritesWhatWithWould(t *testing.T) {
	var buf bytes.Buffer
	h := slog.NewTextHandler(&buf, &slog.HandlerOptions{
		Level:       slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr { return dropTime(a) },
	})
	g := &Gateway{log: slog.New(h)}
	lines := func(f func(l *slog.Logger)) string {
		buf.Reset()
		f(g.requestLog("rid-1", ""))
		f(g.requestLog("rid-2", SurfaceForwardAuth))
		lazy := buf.String()
		buf.Reset()
		f(g.log.With("request_id", "rid-1"))
		f(g.log.With("request_id", "rid-2", "surface", SurfaceForwardAuth))
		if eager := buf.String(); lazy != eager {
			t.Errorf("requestLog wrote\n%s\nLogger.With writes\n%s", lazy, eager)
		}
		return lazy
	}
	lines(func(l *slog.Logger) { l.Info("decision", "outcome", OutcomeAllow) })
	lines(func(l *slog.Logger) { l.With("k", "v").WithGroup("g").Warn("grouped", "x", 1) })
	lines(func(l *slog.Logger) { l.Debug("debug line") })
	if out := lines(func(l *slog.Logger) {}); out != "" {
		t.Errorf("nothing logged, yet output %q", out)
	}
	g.log = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	buf.Reset()
	if l := g.requestLog("rid", ""); l.Enabled(t.Context(), slog.LevelInfo) {
		t.Error("info enabled under a warn handler")
	}
}

func dropTime(a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}
