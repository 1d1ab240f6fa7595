package gateway

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/vigil-authz/vigil/internal/engine"
	"github.com/vigil-authz/vigil/internal/identity"
	"github.com/vigil-authz/vigil/internal/policy"
	"github.com/vigil-authz/vigil/internal/route"
)

// benchCall is the request of bench/gateway/run.sh: bob (an editor, also a
// stored entity) reads a document through a token seen before, against the
// demo policies plus 200 team policies and 3 global forbids.
func benchCall(b *testing.B) (engine.View, *call) {
	b.Helper()
	bundle := policy.Bundle{}
	for _, name := range []string{"demo.cedar", "demo.entities.json"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "examples", "demo", "policies", name))
		if err != nil {
			b.Fatal(err)
		}
		bundle.Files = append(bundle.Files, policy.File{Name: name, Data: data})
	}
	var extra strings.Builder
	for i := 1; i <= 200; i++ {
		fmt.Fprintf(&extra, "@id(\"team-%d-edit\")\npermit (principal in Team::\"team-%d\", action in [Action::\"PUT /documents/{id}\", Action::\"DELETE /documents/{id}\"], resource in Folder::\"folder-%d\");\n", i, i, i)
	}
	extra.WriteString(`@id("high-risk")
forbid (principal, action, resource) when { context.risk.level == "HIGH" };
@id("embargoed-countries")
forbid (principal, action, resource) when { ["KP", "IR", "SY"].contains(context.geo.country) };
@id("office-hours-for-deletes")
forbid (principal, action == Action::"DELETE /documents/{id}", resource)
when { context.request.ip.isInRange(ip("198.51.100.0/24")) };
`)
	bundle.Files = append(bundle.Files, policy.File{Name: "bench.cedar", Data: []byte(extra.String())})
	snap, err := policy.Compile(bundle)
	if err != nil {
		b.Fatal(err)
	}
	tok := &identity.Token{
		Issuer: "http://127.0.0.1:19103", Subject: "bob", IssuedAt: time.Unix(1e9, 0), Expiry: time.Unix(2e9, 0),
		SessionID: "s1", ClientID: "bench", JTI: "j1",
		Roles: []string{"editor"}, PrincipalType: "User", RoleType: "Role",
		Claims: map[string]any{"sub": "bob", "iss": "http://127.0.0.1:19103", "aud": "vigil-bench", "roles": []any{"editor"},
			"client_id": "bench", "jti": "j1", "sid": "s1", "iat": 1e9, "exp": 2e9},
	}
	return engine.View{Policies: snap}, &call{
		method: "GET", path: "/documents/doc-1", host: "127.0.0.1:19105", scheme: "http",
		ip: netip.MustParseAddr("127.0.0.1"), token: tok,
		match: route.Match{
			Action:   types.NewEntityUID("Action", "GET /documents/{id}"),
			Resource: types.NewEntityUID("Document", "doc-1"),
			Params:   map[string]string{"id": "doc-1"},
		},
	}
}

// BenchmarkBuildRequest is the Cedar request of a token seen before.
func BenchmarkBuildRequest(b *testing.B) {
	v, c := benchCall(b)
	facts := newFactCache(16)
	now := time.Unix(1.5e9, 0)
	b.ReportAllocs()
	for b.Loop() {
		_ = buildRequest(v, c, now, nil, facts)
	}
}

// BenchmarkBuildAndDecide adds the decision to BenchmarkBuildRequest.
func BenchmarkBuildAndDecide(b *testing.B) {
	v, c := benchCall(b)
	facts := newFactCache(16)
	now := time.Unix(1.5e9, 0)
	b.ReportAllocs()
	for b.Loop() {
		if res := v.Decide(buildRequest(v, c, now, nil, facts)); !res.Allow {
			b.Fatalf("denied: %+v", res)
		}
	}
}
