package demo

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/vigil-authz/vigil/internal/admin"
	"github.com/vigil-authz/vigil/internal/config"
	"github.com/vigil-authz/vigil/internal/gateway"
	"github.com/vigil-authz/vigil/internal/identity"
	"github.com/vigil-authz/vigil/internal/route"
	"github.com/vigil-authz/vigil/internal/server"
)

// files holds the demo policy set (policies/, the same files as
// examples/demo/policies/) and the policy change the tour pushes (changes/).
//
//go:embed policies changes
var files embed.FS

// Defaults of the demo.
const (
	DefaultAddr      = "127.0.0.1:8000"
	DefaultPDPAddr   = "127.0.0.1:8001"
	DefaultAdminAddr = "127.0.0.1:8002"
	DefaultTokenTTL  = 8 * time.Hour
	// Audience is the audience of the demo tokens.
	Audience = "vigil-demo"
	// ClientID is the client_id of the demo tokens.
	ClientID = "vigil-demo-cli"
	// ACRMFA and ACRPassword are the demo's authentication context
	// classes; the step-up policy asks for ACRMFA.
	ACRMFA      = "urn:vigil:demo:mfa"
	ACRPassword = "urn:vigil:demo:pwd"
	// readyTimeout bounds the wait for the server to become ready.
	readyTimeout = 30 * time.Second
)

// Options configure the demo.
type Options struct {
	// Addr is the gateway's address (default DefaultAddr).
	Addr string
	// PDPAddr is the main listener: AuthZEN, /healthz, /readyz (default
	// DefaultPDPAddr).
	PDPAddr string
	// AdminAddr is the admin API's address (default DefaultAdminAddr).
	AdminAddr string
	// DataDir is Vigil's data directory. Empty means a new temporary
	// directory, removed when Run returns.
	DataDir string
	// TokenTTL is the lifetime of the tour's tokens (default 8h).
	TokenTTL time.Duration
	// Out receives the tour (default io.Discard).
	Out io.Writer
	// Log receives the logs of Vigil and of the sample API (default:
	// discarded).
	Log *slog.Logger
	// Ready, when set, is called once with the tour after it is printed.
	Ready func(*Tour)
}

// Demo is a configured demo; Run starts it.
type Demo struct {
	opts Options
}

// New checks the options and applies defaults. It touches neither the
// network nor the disk.
func New(opts Options) (*Demo, error) {
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if opts.PDPAddr == "" {
		opts.PDPAddr = DefaultPDPAddr
	}
	if opts.AdminAddr == "" {
		opts.AdminAddr = DefaultAdminAddr
	}
	if opts.TokenTTL == 0 {
		opts.TokenTTL = DefaultTokenTTL
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	for key, a := range map[string]string{"addr": opts.Addr, "pdp addr": opts.PDPAddr, "admin addr": opts.AdminAddr} {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("demo %s %q is not HOST:PORT: %w", key, a, err)
		}
	}
	if opts.TokenTTL < time.Minute || opts.TokenTTL > 7*24*time.Hour {
		return nil, fmt.Errorf("demo token ttl %s: must be between 1m and 168h", opts.TokenTTL)
	}
	return &Demo{opts: opts}, nil
}

// PolicyFiles returns the embedded demo policy set: file name → content,
// the files of examples/demo/policies/.
func PolicyFiles() (map[string][]byte, error) {
	return readDir("policies")
}

func readDir(dir string) (map[string][]byte, error) {
	entries, err := fs.ReadDir(files, dir)
	if err != nil {
		return nil, fmt.Errorf("read embedded %s: %w", dir, err)
	}
	out := make(map[string][]byte, len(entries))
	for _, e := range entries {
		data, err := fs.ReadFile(files, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read embedded %s: %w", e.Name(), err)
		}
		out[e.Name()] = data
	}
	return out, nil
}

// services are the demo's own HTTP servers (sample API, issuer).
type services struct {
	apiURL, issuerURL string
	api, issuer       *http.Server
	apiLn, issuerLn   net.Listener
	stop              context.CancelFunc // cancels the servers' base context (open streams)
}

// Run starts everything, prints the tour once Vigil is ready and serves
// until ctx is cancelled. It returns the first error that stopped it.
func (d *Demo) Run(ctx context.Context) error {
	o := d.opts
	dataDir := o.DataDir
	if dataDir == "" {
		tmp, err := os.MkdirTemp("", "vigil-demo-")
		if err != nil {
			return fmt.Errorf("create a temporary data directory: %w", err)
		}
		dataDir = tmp
		defer os.RemoveAll(tmp)
	}
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	policyDir := filepath.Join(dataDir, "policies")
	if err := writePolicies(dataDir, policyDir); err != nil {
		return err
	}

	baseCtx, stopStreams := context.WithCancel(context.WithoutCancel(ctx))
	defer stopStreams()
	svc := &services{stop: stopStreams}
	if svc.issuerLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return fmt.Errorf("listen for the demo token issuer: %w", err)
	}
	if svc.apiLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		svc.issuerLn.Close()
		return fmt.Errorf("listen for the sample API: %w", err)
	}
	svc.issuerURL = "http://" + svc.issuerLn.Addr().String()
	svc.apiURL = "http://" + svc.apiLn.Addr().String()

	issuer, err := identity.NewLocalIssuer(svc.issuerURL, "ES256")
	if err != nil {
		svc.issuerLn.Close()
		svc.apiLn.Close()
		return err
	}
	cfg := d.config(dataDir, policyDir, issuer, svc.apiURL)
	if err := cfg.Validate(); err != nil {
		svc.issuerLn.Close()
		svc.apiLn.Close()
		return fmt.Errorf("demo configuration: %w", err)
	}
	sampleAPI := newAPI(o.Log.With("component", "sample-api"), time.Now, cfg.Gateway.IdentityHeaders.Subject)
	base := func(net.Listener) context.Context { return baseCtx }
	svc.issuer = &http.Server{Handler: issuer, ReadHeaderTimeout: 5 * time.Second, BaseContext: base}
	svc.api = &http.Server{Handler: sampleAPI.handler(), ReadHeaderTimeout: 5 * time.Second, BaseContext: base}
	served := make(chan error, 2)
	go func() { served <- serveHTTP(svc.issuer, svc.issuerLn) }()
	go func() { served <- serveHTTP(svc.api, svc.apiLn) }()
	defer svc.shutdown(o.Log)

	srv, err := server.New(cfg, o.Log)
	if err != nil {
		return fmt.Errorf("start vigil: %w", err)
	}
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	ran := make(chan error, 1)
	go func() { ran <- srv.Run(runCtx) }()

	tour, err := d.waitAndTour(ctx, srv, issuer, dataDir, policyDir, ran, served)
	if err != nil {
		cancelRun()
		var stopped *stoppedError
		switch {
		case errors.As(err, &stopped): // ran has been read
			return stopped.err
		case errors.Is(err, context.Canceled):
			return <-ran
		}
		return errors.Join(err, <-ran)
	}
	if err := tour.Write(o.Out); err != nil {
		o.Log.Warn("print the tour", "err", err)
	}
	if o.Ready != nil {
		o.Ready(tour)
	}
	select {
	case err = <-ran:
		return err
	case err = <-served:
		cancelRun()
		return errors.Join(fmt.Errorf("demo service stopped: %w", err), <-ran)
	}
}

func serveHTTP(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// shutdown stops the sample API and the issuer after Vigil has stopped.
func (s *services) shutdown(log *slog.Logger) {
	s.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range []*http.Server{s.api, s.issuer} {
		if srv == nil {
			continue
		}
		if err := srv.Shutdown(ctx); err != nil {
			log.Warn("demo service did not stop cleanly", "err", err)
			_ = srv.Close()
		}
	}
}

// writePolicies writes the embedded policy set into policyDir (replacing
// what a previous run left there) and the tour's push bodies into
// <dataDir>/push.
func writePolicies(dataDir, policyDir string) error {
	set, err := PolicyFiles()
	if err != nil {
		return err
	}
	if err := os.RemoveAll(policyDir); err != nil {
		return fmt.Errorf("reset %s: %w", policyDir, err)
	}
	if err := os.MkdirAll(policyDir, 0o750); err != nil {
		return fmt.Errorf("create %s: %w", policyDir, err)
	}
	for name, data := range set {
		if err := os.WriteFile(filepath.Join(policyDir, name), data, 0o640); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	changes, err := readDir("changes")
	if err != nil {
		return err
	}
	pushDir := filepath.Join(dataDir, "push")
	if err := os.MkdirAll(pushDir, 0o750); err != nil {
		return fmt.Errorf("create %s: %w", pushDir, err)
	}
	restore := admin.Bundle{Files: map[string]string{}}
	suspend := admin.Bundle{Files: map[string]string{}}
	for name, data := range set {
		restore.Files[name] = string(data)
		suspend.Files[name] = string(data)
	}
	for name, data := range changes {
		suspend.Files[name] = string(data)
	}
	for name, b := range map[string]admin.Bundle{"suspend-bob.json": suspend, "restore.json": restore} {
		data, err := json.MarshalIndent(b, "", "  ")
		if err != nil {
			return fmt.Errorf("encode %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(pushDir, name), append(data, '\n'), 0o640); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

// config builds Vigil's configuration: the gateway in front of the sample
// API, the demo issuer, the routes of the documents API and the policy
// directory (watched: edit a file and the change is live; a push stays
// active until the directory changes again).
func (d *Demo) config(dataDir, policyDir string, issuer *identity.LocalIssuer, apiURL string) *config.Config {
	cfg := &config.Config{DataDir: dataDir}
	cfg.Server.Addr = d.opts.PDPAddr
	cfg.Server.AdminAddr = d.opts.AdminAddr
	cfg.Server.ShutdownTimeout = 5 * time.Second
	cfg.Policies.Dir = policyDir
	passAuth := false
	cfg.Gateway = gateway.Config{
		Listen: d.opts.Addr,
		Upstreams: []gateway.Upstream{{
			Name: "documents", URL: apiURL,
			// The sample API trusts the identity headers and never sees
			// tokens.
			PassAuthorization: &passAuth,
		}},
	}
	cfg.Identity = identity.Config{Issuers: []identity.IssuerConfig{issuer.IssuerConfig(Audience)}}
	cfg.Routing = route.Config{Routes: Routes()}
	cfg.SetDefaults()
	return cfg
}

// Routes returns the route map of the sample API.
func Routes() []route.Route {
	collection := route.Resource{Type: "Collection", ID: "documents"}
	document := route.Resource{Type: "Document", ID: "{id}"}
	return []route.Route{
		{Method: route.Methods{http.MethodGet, http.MethodPost}, Path: "/documents", Resource: collection},
		{Method: route.Methods{http.MethodGet, http.MethodPut, http.MethodDelete}, Path: "/documents/{id}", Resource: document},
		{Method: route.Methods{http.MethodGet}, Path: "/events", Resource: route.Resource{Type: "Feed", ID: "events"}},
		{Method: route.Methods{http.MethodGet}, Path: "/ws", Resource: route.Resource{Type: "Feed", ID: "ws"}},
	}
}

// Users returns the demo users (without tokens).
func Users() []User {
	return []User{
		{Name: "alice", Var: "ALICE", Roles: []string{"admin"}, ACR: ACRMFA, About: "alice, admin, signed in with MFA"},
		{Name: "bob", Var: "BOB", Roles: []string{"editor"}, ACR: ACRMFA, About: "bob, editor (owns doc-2), signed in with MFA"},
		{Name: "carol", Var: "CAROL", Roles: []string{"viewer"}, ACR: ACRMFA, CAE: true,
			About: "carol, viewer, signed in with MFA; her client handles CAE claims challenges"},
		{Name: "dave", Var: "DAVE", Roles: []string{"editor"}, ACR: ACRPassword, About: "dave, editor (owns doc-3), password only: must step up to delete"},
	}
}

// mintTokens mints a token for every user.
func mintTokens(issuer *identity.LocalIssuer, ttl time.Duration, now time.Time) ([]User, error) {
	users := Users()
	for i := range users {
		u := &users[i]
		amr := []string{"pwd"}
		if u.ACR == ACRMFA {
			amr = []string{"pwd", "otp"}
		}
		claims := map[string]any{
			"sub":       u.Name,
			"aud":       Audience,
			"client_id": ClientID,
			"roles":     u.Roles,
			"acr":       u.ACR,
			"amr":       amr,
			"auth_time": now.Unix(),
			"sid":       "demo-session-" + u.Name,
			"name":      u.Name,
			"email":     u.Name + "@demo.vigil.test",
		}
		if u.CAE {
			// The client capability "cp1": the gateway answers a revoked
			// token with a CAE claims challenge instead of invalid_token.
			claims["xms_cc"] = []string{"cp1"}
		}
		tok, err := issuer.Mint(claims, ttl)
		if err != nil {
			return nil, fmt.Errorf("mint a token for %s: %w", u.Name, err)
		}
		u.Token = tok
	}
	return users, nil
}

// Steps returns the tour's steps, in order.
func Steps() []Step {
	const (
		get, post, put, del = http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete
	)
	return []Step{
		{Title: "alice (admin) lists the documents", Method: get, Base: VarGateway, Path: "/documents", Bearer: "ALICE", Status: 200},
		{Title: "carol (viewer) reads alice's document", Method: get, Base: VarGateway, Path: "/documents/doc-1", Bearer: "CAROL", Status: 200},
		{Title: "carol (viewer) may not create documents", Method: post, Base: VarGateway, Path: "/documents", Bearer: "CAROL",
			JSON: `{"title":"An idea"}`, Status: 403, Then: "a problem+json body with the request id"},
		{Title: "bob (editor) creates one", Method: post, Base: VarGateway, Path: "/documents", Bearer: "BOB",
			JSON: `{"title":"Release notes","body":"v1"}`, Status: 201, Then: "the API saw bob in X-Vigil-Subject"},
		{Title: "bob edits his own document", Method: put, Base: VarGateway, Path: "/documents/doc-2", Bearer: "BOB",
			JSON: `{"title":"Notes","body":"Keys rotated."}`, Status: 200},
		{Title: "but not alice's (ownership)", Method: put, Base: VarGateway, Path: "/documents/doc-1", Bearer: "BOB",
			JSON: `{"title":"Mine now"}`, Status: 403},
		{Title: "no token", Method: get, Base: VarGateway, Path: "/documents", Status: 401,
			Then: `WWW-Authenticate: Bearer realm="vigil"`},
		{Title: "a token Vigil cannot verify", Method: get, Base: VarGateway, Path: "/documents",
			Authorization: "Bearer not.a.token", Status: 401, Then: `error="invalid_token"`},
		{Title: "dave (password only) deletes his own document: step-up", Method: del, Base: VarGateway, Path: "/documents/doc-3",
			Bearer: "DAVE", Status: 401, Then: `error="insufficient_user_authentication", acr_values="` + ACRMFA + `", max_age="3600"`},
		{Title: "bob (MFA within the hour) deletes his own document", Method: del, Base: VarGateway, Path: "/documents/doc-2",
			Bearer: "BOB", Status: 204},
		{Title: "ask the decision point directly (AuthZEN): may carol create?", Method: post, Base: VarPDP,
			Path: "/access/v1/evaluation", Status: 200, Then: `{"decision":false}`,
			JSON: `{"subject":{"type":"User","id":"carol"},"action":{"name":"POST /documents"},"resource":{"type":"Collection","id":"documents"}}`},
		{Title: "bob follows the live event stream (in a second shell)", Method: get,
			Base: VarGateway, Path: "/events", Bearer: "BOB", Status: 200, Stream: true, Then: "one event a second until access ends"},
		{Title: "or a WebSocket (framed ticks, one a second)", Method: get, Base: VarGateway, Path: "/ws", Bearer: "BOB",
			WebSocket: true, Status: 101, Stream: true, Then: "closed with 1008 when access ends"},
		{Title: "change policy live: push a set that suspends bob", Method: post, Base: VarAdmin, Path: "/admin/v1/policies",
			Bearer: VarAdminKey, JSONFile: "push/suspend-bob.json", Status: 200,
			Then: "bob's open stream and WebSocket close at once"},
		{Title: "bob is denied from now on", Method: get, Base: VarGateway, Path: "/documents/doc-1", Bearer: "BOB", Status: 403},
		{Title: "restore the original policies", Method: post, Base: VarAdmin, Path: "/admin/v1/policies",
			Bearer: VarAdminKey, JSONFile: "push/restore.json", Status: 200},
		{Title: "bob is back", Method: get, Base: VarGateway, Path: "/documents/doc-1", Bearer: "BOB", Status: 200},
		{Title: "revoke carol's sessions (what a CAEP session-revoked event does)", Method: post, Base: VarAdmin,
			Path: "/admin/v1/signals", Bearer: VarAdminKey, Status: 200, Then: "in force when answered",
			JSON: `{"kind":"session-revoked","subject":{"format":"opaque","id":"carol"},"reason":"laptop lost"}`},
		{Title: "carol's token, still unexpired, is refused from now on", Method: get, Base: VarGateway, Path: "/documents/doc-1",
			Bearer: "CAROL", Status: 401, Then: `error="insufficient_claims"`},
	}
}

// stoppedError is the error Server.Run returned before the server was
// ready.
type stoppedError struct{ err error }

func (e *stoppedError) Error() string { return e.err.Error() }
func (e *stoppedError) Unwrap() error { return e.err }

// waitAndTour waits until the server listens and is ready, then builds the
// tour from the bound addresses.
func (d *Demo) waitAndTour(ctx context.Context, srv *server.Server, issuer *identity.LocalIssuer, dataDir, policyDir string, ran, served <-chan error) (*Tour, error) {
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	var lastErr error
	for {
		mainAddr, adminAddr := srv.Addrs()
		gw := srv.ListenerAddr("gateway")
		if mainAddr != nil && adminAddr != nil && gw != nil {
			if lastErr = srv.Ready(); lastErr == nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case err := <-ran:
			if err == nil {
				err = errors.New("vigil stopped before it was ready")
			}
			return nil, &stoppedError{err: err}
		case err := <-served:
			return nil, fmt.Errorf("demo service stopped: %w", err)
		case <-deadline.C:
			return nil, fmt.Errorf("vigil not ready after %s: %v", readyTimeout, lastErr)
		case <-poll.C:
		}
	}
	users, err := mintTokens(issuer, d.opts.TokenTTL, time.Now())
	if err != nil {
		return nil, err
	}
	mainAddr, adminAddr := srv.Addrs()
	return &Tour{
		Vars: []Var{
			{VarGateway, "http://" + srv.ListenerAddr("gateway").String()},
			{VarPDP, "http://" + mainAddr.String()},
			{VarAdmin, "http://" + adminAddr.String()},
			{VarDataDir, dataDir},
			{VarAdminKey, srv.AdminToken},
		},
		Users:     users,
		Steps:     Steps(),
		TokenTTL:  d.opts.TokenTTL,
		PolicyDir: policyDir,
		Issuer:    issuer.Issuer(),
	}, nil
}
