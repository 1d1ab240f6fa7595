package authzen_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/vigil-authz/vigil/internal/authzen"
	"github.com/vigil-authz/vigil/internal/engine"
	"github.com/vigil-authz/vigil/internal/policy"
)

func Example() {
	snap, err := policy.Compile(policy.Bundle{Files: []policy.File{{
		Name: "docs.cedar",
		Data: []byte(`@id("owners-read") permit(principal, action == Action::"read", resource) when { resource.owner == principal };`),
	}}})
	if err != nil {
		panic(err)
	}
	h := authzen.New(authzen.Options{
		Views:  func() engine.View { return engine.View{Policies: snap} },
		Issuer: "https://pdp.example.com",
	})

	body := `{"subject":{"type":"User","id":"alice"},"action":{"name":"read"},
	  "resource":{"type":"Doc","id":"7","properties":{"owner":{"__entity":{"type":"User","id":"alice"}}}}}`
	req := httptest.NewRequest(http.MethodPost, authzen.PathEvaluation, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	fmt.Println(rec.Code, rec.Body.String())

	req = httptest.NewRequest(http.MethodPost, authzen.PathEvaluation, strings.NewReader(strings.Replace(body, `"id":"alice"}}}`, `"id":"bob"}}}`, 1)))
	req.Header.Set("Content-Type", "application/json")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	fmt.Println(rec.Code, rec.Body.String())
	// Output:
	// 200 {"decision":true}
	// 200 {"decision":false}
}
