package identity_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/vigil-authz/vigil/internal/identity"
)

// A gateway verifies bearer tokens with a Verifier; here the issuer is an
// in-process LocalIssuer.
func Example() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	idp, err := identity.NewLocalIssuer("http://"+ln.Addr().String(), "ES256")
	if err != nil {
		panic(err)
	}
	srv := &http.Server{Handler: idp, ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	cfg := identity.Config{Issuers: []identity.IssuerConfig{idp.IssuerConfig("todo-api")}}
	v, err := identity.NewVerifier(cfg, nil, nil, nil)
	if err != nil {
		panic(err)
	}
	defer v.Close()
	v.Start(context.Background())

	raw, _ := idp.Mint(map[string]any{
		"sub": "alice", "aud": "todo-api", "client_id": "todo-web", "roles": []string{"editor"},
	}, 5*time.Minute)
	tok, err := v.Verify(context.Background(), raw)
	fmt.Println(tok.PrincipalType, tok.Subject, tok.RoleType, tok.Roles, err)

	_, err = v.Verify(context.Background(), raw[:len(raw)-4])
	var e *identity.Error
	if errors.As(err, &e) {
		fmt.Printf("401 WWW-Authenticate: Bearer error=%q, error_description=%q\n", e.Code, e.Description)
	}
	// Output:
	// User alice Role [editor] <nil>
	// 401 WWW-Authenticate: Bearer error="invalid_token", error_description="The access token signature is invalid"
}
