package policytest_test

import (
	"fmt"
	"os"

	"github.com/vigil-authz/vigil/internal/policy"
	"github.com/vigil-authz/vigil/internal/policytest"
)

// Parse a test file, run it against a policy set and print the report as
// `vigil test` does.
func Example() {
	snap, err := policy.Compile(policy.Bundle{Files: []policy.File{{
		Name: "docs.cedar",
		Data: []byte(`@id("owners") permit (principal, action, resource) when { resource.owner == principal };`),
	}, {
		Name: "docs.entities.json",
		Data: []byte(`[{"uid": {"type": "Doc", "id": "d1"}, "attrs": {"owner": {"__entity": {"type": "User", "id": "alice"}}}, "parents": []}]`),
	}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	suite, err := policytest.Parse("docs_test.yaml", []byte(`
name: documents
cases:
  - name: owners read their documents
    principal: User::"alice"
    action: read
    resource: Doc::"d1"
    expect: allow
    reasons: [owners]
  - name: others do not
    principal: User::"bob"
    action: read
    resource: Doc::"d1"
    expect: allow
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	var rep policytest.Report
	rep.Add(policytest.NewRunner(snap).RunSuite(suite, policytest.Options{}))
	_ = rep.WriteText(os.Stdout, true)
	// Output:
	// === docs_test.yaml: documents
	// --- PASS: owners read their documents (docs_test.yaml:4)
	// --- FAIL: others do not (docs_test.yaml:10)
	//     got deny, want allow
	//     decided deny; determining policies: []
	// 1 passed, 1 failed
}

// Evaluate one request given as `vigil eval` flags.
func ExampleParseRequest() {
	snap, err := policy.Compile(policy.Bundle{Files: []policy.File{{
		Name: "p.cedar",
		Data: []byte(`@id("admins") permit (principal in Role::"admin", action, resource);`),
	}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	req, err := policytest.ParseRequest(policytest.RequestFlags{
		Principal: `User::"alice"`,
		Action:    `GET /documents/{id}`,
		Resource:  `Document::"d1"`,
		Context:   `{"device": {"id": "laptop-7", "compliant": true}}`,
		Entities:  `[{"uid": {"type": "User", "id": "alice"}, "attrs": {}, "parents": [{"type": "Role", "id": "admin"}]}]`,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	res := policytest.Eval(snap, req)
	res.PolicyVersion = "" // content hash; left out to keep the example stable
	_ = policytest.WriteResult(os.Stdout, req, res, false)
	// Output:
	// ALLOW  User::"alice"  Action::"GET /documents/{id}"  Document::"d1"
	// determining policies:
	//   admins (permit)
	// evaluation errors: none
}
