package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/vigil-authz/vigil/internal/engine"
	"github.com/vigil-authz/vigil/internal/identity"
	"github.com/vigil-authz/vigil/internal/policy"
	"github.com/vigil-authz/vigil/internal/route"
)

// trustedAddr is the loopback address the tests use as a trusted proxy;
// ordinary test clients connect from 127.0.0.1.
const trustedAddr = "127.0.0.2"

// harness is a running gateway with a real token issuer and verifier, a
// policy store, a route table and an upstream, all on loopback.
type harness struct {
	t        *testing.T
	issuer   *identity.LocalIssuer
	store    *policy.Store
	gw       *Gateway
	url      string // gateway base URL
	upstream *httptest.Server
	logs     *syncBuffer
}

type harnessOption func(*Config, *Options)

// routes of the test API.
var testRoutes = []route.Route{
	{Method: route.Methods{"GET", "PUT", "DELETE"}, Path: "/todos/{id}", Resource: route.Resource{Type: "Todo"}},
	{Method: route.Methods{"GET"}, Path: "/healthz", Anonymous: true},
	{Method: route.Methods{"GET"}, Path: "/events", Resource: route.Resource{Type: "Feed", ID: "events"}},
	{Method: route.Methods{"GET"}, Path: "/ws", Resource: route.Resource{Type: "Feed", ID: "ws"}},
	{Method: route.Methods{"GET"}, Path: "/stream", Resource: route.Resource{Type: "Feed", ID: "stream"}},
	{Method: route.Methods{"GET"}, Path: "/slow"},
	{Method: route.Methods{"GET"}, Path: "/down", Upstream: "down"},
	{Method: route.Methods{"GET"}, Path: "/admin"},
}

func newHarness(t *testing.T, opts ...harnessOption) *harness {
	t.Helper()
	h := &harness{t: t, logs: &syncBuffer{}}
	log := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	// Issuer and verifier.
	var issuerHandler http.Handler = http.NotFoundHandler()
	issuerSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { issuerHandler.ServeHTTP(w, r) }))
	t.Cleanup(issuerSrv.Close)
	li, err := identity.NewLocalIssuer(issuerSrv.URL, "ES256")
	if err != nil {
		t.Fatal(err)
	}
	issuerHandler = li
	h.issuer = li
	verifier, err := identity.NewVerifier(identity.Config{Issuers: []identity.IssuerConfig{li.IssuerConfig("todo-api")}}, issuerSrv.Client(), log, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	verifier.Start(ctx)
	t.Cleanup(verifier.Close)

	// Policies.
	h.store = policy.NewStore(policy.StoreOptions{})
	h.setPolicies("todo.cedar")
	eng := engine.New(h.store, nil)

	// Routes.
	table, err := route.Compile(route.Config{Routes: testRoutes, ActionType: "Action"}, nil)
	if err != nil {
		t.Fatal(err)
	}

	// Upstreams: one that works, one that is down.
	h.upstream = httptest.NewServer(upstreamHandler(t))
	t.Cleanup(h.upstream.Close)
	down, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downURL := "http://" + down.Addr().String()
	down.Close()

	cfg := Config{
		Upstreams: []Upstream{
			{Name: "todo", URL: h.upstream.URL, ResponseHeaderTimeout: 300 * time.Millisecond},
			{Name: "down", URL: downURL, DialTimeout: time.Second},
		},
		TrustedProxies:    []string{trustedAddr},
		DeviceHeader:      "X-Device-ID",
		ReadHeaderTimeout: 300 * time.Millisecond,
		MaxHeaderBytes:    8 << 10,
	}
	o := Options{
		Views:  eng.View,
		Auth:   verifier,
		Router: table,
		Log:    log,
	}
	for _, opt := range opts {
		opt(&cfg, &o)
	}
	o.Config = cfg
	gw, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	h.gw = gw
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.url = "http://" + ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- gw.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := gw.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := gw.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", h.logs.String())
		}
	})
	return h
}

// setPolicies activates the named files of testdata/policies (a ".txt"
// suffix is dropped, so that alternative sets are not loaded by default).
func (h *harness) setPolicies(names ...string) {
	h.t.Helper()
	var b policy.Bundle
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join("testdata", "policies", n))
		if err != nil {
			h.t.Fatal(err)
		}
		b.Files = append(b.Files, policy.File{Name: strings.TrimSuffix(n, ".txt"), Data: data})
	}
	if _, _, err := h.store.Apply(b, "test"); err != nil {
		h.t.Fatalf("apply policies: %v", err)
	}
}

// token mints an access token for sub with roles and extra claims.
func (h *harness) token(sub string, roles []string, extra map[string]any) string {
	h.t.Helper()
	claims := map[string]any{"sub": sub, "aud": "todo-api", "client_id": "test-client", "roles": roles}
	for k, v := range extra {
		claims[k] = v
	}
	tok, err := h.issuer.Mint(claims, time.Hour)
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

// client returns an HTTP client that connects from 127.0.0.1 (untrusted) or
// from trustedAddr (a trusted proxy).
func client(trusted bool) *http.Client {
	local := "127.0.0.1"
	if trusted {
		local = trustedAddr
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 2 * time.Second}
	return &http.Client{
		Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true},
		Timeout:   10 * time.Second,
	}
}

// request sends one request to the gateway.
func (h *harness) request(trusted bool, method, path string, header http.Header) (*http.Response, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	for k, vv := range header {
		req.Header[k] = vv
	}
	if host := header.Get("Host"); host != "" {
		req.Host = host
	}
	resp, err := client(trusted).Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp, body
}

func bearerHeader(tok string) http.Header {
	return http.Header{"Authorization": {"Bearer " + tok}}
}

// echo is what the test upstream reports about a request it received.
type echo struct {
	Method     string      `json:"method"`
	RequestURI string      `json:"request_uri"`
	Host       string      `json:"host"`
	Header     http.Header `json:"header"`
	Body       string      `json:"body"`
}

func decodeEcho(t *testing.T, body []byte) echo {
	t.Helper()
	var e echo
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("upstream answer is not an echo: %v: %s", err, body)
	}
	return e
}

// upstreamHandler is the test API: it echoes requests, streams events,
// runs a WebSocket echo and can be slow.
func upstreamHandler(t *testing.T) http.Handler {
	mux := http.NewServeMux()
	echoHandler := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", "from-upstream")
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		_ = json.NewEncoder(w).Encode(echo{Method: r.Method, RequestURI: r.RequestURI, Host: r.Host, Header: r.Header, Body: string(body)})
	}
	mux.HandleFunc("/", echoHandler)
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		rc := http.NewResponseController(w)
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "id: %d\ndata: tick %d\n\n", i, i); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		rc := http.NewResponseController(w)
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "{\"n\":%d}\n", i); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"echo.v1"}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, data, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if string(data) == "please close" {
				_ = c.Close(4001, "as you wish")
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte("echo: "), data...)); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
	})
	mux.HandleFunc("GET /todos/drain", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
		echoHandler(w, r)
	})
	return mux
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// problemBody decodes a problem+json answer.
func problemBody(t *testing.T, resp *http.Response, body []byte) map[string]any {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json; body %s", ct, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("problem body: %v: %s", err, body)
	}
	return m
}
