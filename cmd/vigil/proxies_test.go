package main

// Real NGINX (auth_request) and Caddy (forward_auth) in front of Vigil's
// forward-auth endpoint, configured by the files under examples/: the
// example gateway configuration (examples/gateway/vigil.yaml) with the
// demo policies, the NGINX template and the Caddyfile, rendered with
// loopback ports.

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-authz/vigil/internal/config"
	"github.com/vigil-authz/vigil/internal/identity"
	"github.com/vigil-authz/vigil/internal/server"
)

// backend is the API behind the proxies; it records what reached it.
type backend struct {
	mu       sync.Mutex
	hits     int
	subjects []string
	roles    []string
	sessions []string
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.hits++
	b.subjects = append(b.subjects, r.Header.Get("X-Vigil-Subject"))
	b.roles = append(b.roles, r.Header.Get("X-Vigil-Roles"))
	b.sessions = append(b.sessions, r.Header.Get("X-Vigil-Session"))
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"path": r.URL.Path, "subject": r.Header.Get("X-Vigil-Subject")})
}

// seen is what the API saw of the last request.
type seen struct{ subject, roles, session string }

func (b *backend) snapshot() (hits int, last seen) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.hits > 0 {
		i := b.hits - 1
		last = seen{b.subjects[i], b.roles[i], b.sessions[i]}
	}
	return b.hits, last
}

// forwardAuthStack is Vigil (from examples/gateway/vigil.yaml), its token
// issuer and the backend API, all on loopback.
type forwardAuthStack struct {
	gatewayAddr string
	apiAddr     string
	backend     *backend
	tokens      map[string]string // user → token
}

func startForwardAuthStack(t *testing.T) *forwardAuthStack {
	t.Helper()
	var issuerHandler http.Handler = http.NotFoundHandler()
	issuerSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { issuerHandler.ServeHTTP(w, r) }))
	t.Cleanup(issuerSrv.Close)
	li, err := identity.NewLocalIssuer(issuerSrv.URL, "ES256")
	if err != nil {
		t.Fatal(err)
	}
	issuerHandler = li

	be := &backend{}
	api := httptest.NewServer(be)
	t.Cleanup(api.Close)

	const audience = "documents-api"
	for k, v := range map[string]string{
		"VIGIL_ADDR":         "127.0.0.2:0",
		"VIGIL_ADMIN_ADDR":   "127.0.0.3:0",
		"VIGIL_GATEWAY_ADDR": "127.0.0.1:0",
		"VIGIL_DATA_DIR":     t.TempDir(),
		"VIGIL_ISSUER":       li.Issuer(),
		"VIGIL_AUDIENCE":     audience,
		"API_URL":            api.URL,
		// NGINX and Caddy connect from 127.0.0.1.
		"VIGIL_TRUSTED_PROXIES": "127.0.0.1/32",
	} {
		t.Setenv(k, v)
	}
	cfg, err := config.Load(filepath.Join(repoRoot(), "examples", "gateway", "vigil.yaml"))
	if err != nil {
		t.Fatalf("examples/gateway/vigil.yaml: %v", err)
	}
	// The discovery document is plain http on loopback, which the
	// verifier allows.
	logs := &syncBuffer{}
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("vigil stopped with %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("vigil did not stop")
		}
		if t.Failed() {
			logs.mu.Lock()
			t.Logf("vigil logs:\n%s", logs.String())
			logs.mu.Unlock()
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for srv.ListenerAddr("gateway") == nil || srv.Ready() != nil {
		select {
		case err := <-done:
			t.Fatalf("vigil stopped: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("vigil not ready after 30s: %v\n%s", srv.Ready(), logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	st := &forwardAuthStack{
		gatewayAddr: srv.ListenerAddr("gateway").String(),
		apiAddr:     strings.TrimPrefix(api.URL, "http://"),
		backend:     be,
		tokens:      map[string]string{},
	}
	for _, u := range []struct{ name, role, acr, sid string }{
		{"bob", "editor", "urn:vigil:demo:mfa", "s-bob"},
		{"carol", "viewer", "urn:vigil:demo:mfa", "s-carol"},
		{"dave", "editor", "urn:vigil:demo:pwd", "s-dave"},
		{"alice", "admin", "urn:vigil:demo:mfa", ""}, // a token without a session id
	} {
		claims := map[string]any{
			"sub": u.name, "aud": audience, "client_id": "proxies-test", "roles": []string{u.role},
			"acr": u.acr, "auth_time": time.Now().Unix(),
		}
		if u.sid != "" {
			claims["sid"] = u.sid
		}
		tok, err := li.Mint(claims, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		st.tokens[u.name] = tok
	}
	return st
}

// proxyCase is one request through a proxy.
type proxyCase struct {
	name       string
	method     string
	path       string
	user       string // "" for no token
	authz      string // literal Authorization header
	header     map[string]string
	status     int    // 0: any error status (4xx or 5xx)
	challenge  string // substring of WWW-Authenticate
	reaches    bool   // whether the request reaches the backend
	sees       seen   // the identity headers the backend sees
	bodyToSend string
}

// anyButForged stands for any value the API may see except the forged
// one.
const anyButForged = "<anything but the forged value>"

var proxyCases = []proxyCase{
	{name: "an editor reads a document and the API sees who", method: "GET", path: "/documents/doc-1", user: "bob",
		status: 200, reaches: true, sees: seen{"bob", "editor", "s-bob"}},
	{name: "forged identity headers are replaced by the verified ones", method: "GET", path: "/documents/doc-1", user: "bob",
		header: map[string]string{"X-Vigil-Subject": "alice", "X-Vigil-Roles": "admin", "X-Vigil-Session": "forged"},
		status: 200, reaches: true, sees: seen{"bob", "editor", "s-bob"}},
	// For a token without "sid" forward-auth answers X-Vigil-Session
	// empty, so both proxies replace a forged value with the empty one.
	{name: "a forged identity header Vigil does not set is not passed on", method: "GET", path: "/documents/doc-1", user: "alice",
		header: map[string]string{"X-Vigil-Session": "forged"},
		status: 200, reaches: true, sees: seen{"alice", "admin", ""}},
	{name: "a viewer creating a document is denied", method: "POST", path: "/documents", user: "carol",
		bodyToSend: `{"title":"x"}`, status: 403},
	{name: "a request without a token is challenged", method: "GET", path: "/documents", status: 401,
		challenge: `Bearer realm="vigil"`},
	{name: "an invalid token is refused", method: "GET", path: "/documents", authz: "Bearer not.a.token", status: 401,
		challenge: `error="invalid_token"`},
	{name: "a delete without recent MFA gets a step-up challenge", method: "DELETE", path: "/documents/doc-3", user: "dave",
		status: 401, challenge: `error="insufficient_user_authentication"`},
	{name: "an unknown route is denied", method: "GET", path: "/admin/secrets", user: "bob", status: 403},
	// Proxies copy client headers into the auth request; forged
	// original-request headers disagree with the proxy's own and the
	// request fails closed (the proxy's status for a 400 varies: NGINX
	// answers 500).
	{name: "forged original-request headers cannot change what is decided", method: "POST", path: "/documents", user: "carol",
		bodyToSend: `{"title":"x"}`, header: map[string]string{
			"X-Original-Method": "GET", "X-Original-URI": "/documents/doc-1",
			"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/documents/doc-1",
		}},
}

func (st *forwardAuthStack) run(t *testing.T, base string) {
	t.Helper()
	for _, tc := range proxyCases {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.bodyToSend != "" {
				body = strings.NewReader(tc.bodyToSend)
			}
			req, err := http.NewRequest(tc.method, base+tc.path, body)
			if err != nil {
				t.Fatal(err)
			}
			if tc.user != "" {
				req.Header.Set("Authorization", "Bearer "+st.tokens[tc.user])
			}
			if tc.authz != "" {
				req.Header.Set("Authorization", tc.authz)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			before, _ := st.backend.snapshot()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tc.status == 0 && resp.StatusCode < 400 || tc.status != 0 && resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d; body:\n%s", resp.StatusCode, tc.status, data)
			}
			if tc.challenge != "" && !strings.Contains(resp.Header.Get("WWW-Authenticate"), tc.challenge) {
				t.Errorf("WWW-Authenticate = %q, want it to contain %q", resp.Header.Get("WWW-Authenticate"), tc.challenge)
			}
			after, got := st.backend.snapshot()
			switch {
			case tc.reaches && after != before+1:
				t.Fatalf("the request did not reach the API (hits %d → %d)", before, after)
			case !tc.reaches && after != before:
				t.Fatalf("a denied request reached the API (hits %d → %d)", before, after)
			}
			want := tc.sees
			if want.session == anyButForged && got.session != "forged" {
				want.session = got.session
			}
			if tc.reaches && got != want {
				t.Errorf("the API saw X-Vigil-Subject/-Roles/-Session %q, want %q", got, tc.sees)
			}
		})
	}
}

// renderTemplate substitutes ${NAME} for the given names only, like
// `envsubst '$A $B'`, leaving NGINX's own $variables alone.
func renderTemplate(t *testing.T, src string, vars map[string]string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	out := string(data)
	for k, v := range vars {
		out = strings.ReplaceAll(out, "${"+k+"}", v)
	}
	if i := strings.Index(out, "${"); i >= 0 {
		t.Fatalf("%s: unrendered placeholder near %q", src, out[i:min(len(out), i+40)])
	}
	return out
}

// startProcess starts cmd, stops it with SIGTERM at the end of the test
// and waits until addr answers HTTP.
func startProcess(t *testing.T, cmd *exec.Cmd, addr string, logFiles ...string) {
	t.Helper()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	dump := func() string {
		out.mu.Lock()
		s := out.String()
		out.mu.Unlock()
		for _, f := range logFiles {
			if b, err := os.ReadFile(f); err == nil {
				s += "\n--- " + filepath.Base(f) + "\n" + string(b)
			}
		}
		return s
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(cmd.Path), dump())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-done:
			t.Fatalf("%s exited early:\n%s", filepath.Base(cmd.Path), dump())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening on %s after 30s:\n%s", filepath.Base(cmd.Path), addr, dump())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNGINXForwardAuth(t *testing.T) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			t.Skip("nginx not found: install nginx (apt-get install -y nginx)")
		}
		bin = "/usr/sbin/nginx"
	}
	st := startForwardAuthStack(t)
	dir := t.TempDir()
	listen := freePort(t)
	conf := renderTemplate(t, filepath.Join(repoRoot(), "examples", "nginx", "nginx.conf.template"), map[string]string{
		"LISTEN_ADDR": listen, "VIGIL_GATEWAY_ADDR": st.gatewayAddr, "API_ADDR": st.apiAddr,
	})
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	errLog := filepath.Join(dir, "error.log")
	cmd := exec.Command(bin, "-p", dir, "-e", errLog, "-c", "nginx.conf", "-g", "daemon off;")
	startProcess(t, cmd, listen, errLog)
	st.run(t, "http://"+listen)
}

func TestCaddyForwardAuth(t *testing.T) {
	bin, err := exec.LookPath("caddy")
	if err != nil {
		t.Skip("caddy not found: install caddy (apt-get install -y caddy)")
	}
	st := startForwardAuthStack(t)
	home := t.TempDir()
	listen := freePort(t)
	cmd := exec.Command(bin, "run", "--config", filepath.Join(repoRoot(), "examples", "caddy", "Caddyfile"), "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(),
		"LISTEN_ADDR="+listen, "VIGIL_GATEWAY_ADDR="+st.gatewayAddr, "API_ADDR="+st.apiAddr,
		"HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, "config"), "XDG_DATA_HOME="+filepath.Join(home, "data"),
	)
	startProcess(t, cmd, listen)
	st.run(t, "http://"+listen)
}
