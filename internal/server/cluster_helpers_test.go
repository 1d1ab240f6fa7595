package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-authz/vigil/internal/config"
	"github.com/vigil-authz/vigil/internal/engine"
	"github.com/vigil-authz/vigil/internal/gateway"
	"github.com/vigil-authz/vigil/internal/identity"
	"github.com/vigil-authz/vigil/internal/policy"
	"github.com/vigil-authz/vigil/internal/replica/natstest"
	"github.com/vigil-authz/vigil/internal/route"
)

// Two policy versions for the cluster tests: each lets exactly one of alice
// and bob read through AuthZEN (a decision from a mix of both would allow
// both or neither), and both let anyone through the gateway route, which
// revocations are tested on.
const (
	clusterAlice = `@id("alice-only") permit(principal == User::"alice", action == Action::"read", resource);
@id("gateway") permit(principal, action == Action::"GET /docs/{id}", resource);`
	clusterBob = `@id("bob-only") permit(principal == User::"bob", action == Action::"read", resource);
@id("gateway") permit(principal, action == Action::"GET /docs/{id}", resource);`
	clusterAdminKey = "cluster-test-admin-key-0123456789"
)

// vigilCluster is a NATS JetStream cluster of three nodes and Vigil
// replicas on it, all in this process and on loopback.
type vigilCluster struct {
	t        testing.TB
	nats     *natstest.Cluster
	issuer   *identity.LocalIssuer
	upstream string
	policies string
	client   *http.Client
}

// replicaProc is one running Vigil replica.
type replicaProc struct {
	*Server
	name     string
	cfg      *config.Config
	cancel   context.CancelFunc
	done     chan error
	mainURL  string
	adminURL string
	gwURL    string
}

func newVigilCluster(t testing.TB) *vigilCluster {
	t.Helper()
	var issuerHandler http.Handler = http.NotFoundHandler()
	issuerSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { issuerHandler.ServeHTTP(w, r) }))
	t.Cleanup(issuerSrv.Close)
	li, err := identity.NewLocalIssuer(issuerSrv.URL, "ES256")
	if err != nil {
		t.Fatal(err)
	}
	issuerHandler = li
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.Header.Get("X-Vigil-Subject"))
	}))
	t.Cleanup(upstream.Close)
	return &vigilCluster{
		t:        t,
		nats:     natstest.StartCluster(t, 3),
		issuer:   li,
		upstream: upstream.URL,
		policies: policyDir(t, map[string]string{"main.cedar": clusterAlice}),
		client:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second},
	}
}

func clusterLogger(t testing.TB, name string) *slog.Logger {
	if os.Getenv("VIGIL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("replica", name)
	}
	return slog.New(slog.DiscardHandler)
}

// config returns a replica configuration: its own data directory, the
// shared policy directory, issuer and upstream, and NATS at natsURL.
func (c *vigilCluster) config(name, natsURL string, maxStaleness time.Duration) *config.Config {
	cfg := config.Default()
	cfg.DataDir = c.t.TempDir()
	cfg.Policies.Dir = c.policies
	cfg.Server.Addr, cfg.Server.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Admin.Keys = []string{clusterAdminKey}
	cfg.Gateway.Listen = "127.0.0.1:0"
	cfg.Gateway.Upstreams = []gateway.Upstream{{Name: "api", URL: c.upstream}}
	cfg.Identity.Issuers = []identity.IssuerConfig{c.issuer.IssuerConfig("api")}
	cfg.Routing.Routes = []route.Route{{Method: route.Methods{"GET"}, Path: "/docs/{id}", Resource: route.Resource{Type: "Doc"}}}
	cfg.State.NATSURL = natsURL
	cfg.State.Replicas = 3
	cfg.Cluster.Name = name
	cfg.Cluster.MaxStaleness = maxStaleness
	// Generous: the tests check that changes arrive, the benchmark how fast.
	cfg.Cluster.MaxWait = 10 * time.Second
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		c.t.Fatal(err)
	}
	return cfg
}

// start runs a replica with cfg and waits until it listens (not until it
// is ready: callers decide what to wait for).
func (c *vigilCluster) start(cfg *config.Config) *replicaProc {
	c.t.Helper()
	s, err := New(cfg, clusterLogger(c.t, cfg.Cluster.Name))
	if err != nil {
		c.t.Fatalf("start %s: %v", cfg.Cluster.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &replicaProc{Server: s, name: cfg.Cluster.Name, cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- s.Run(ctx) }()
	c.t.Cleanup(p.stop)
	deadline := time.Now().Add(10 * time.Second)
	for s.ListenerAddr("gateway") == nil {
		if time.Now().After(deadline) {
			c.t.Fatalf("%s does not listen", p.name)
		}
		time.Sleep(5 * time.Millisecond)
	}
	m, a := s.Addrs()
	p.mainURL, p.adminURL, p.gwURL = "http://"+m.String(), "http://"+a.String(), "http://"+s.ListenerAddr("gateway").String()
	return p
}

// stop shuts the replica down (idempotent).
func (p *replicaProc) stop() {
	if p.cancel == nil {
		return
	}
	p.cancel()
	<-p.done
	p.cancel = nil
}

func (p *replicaProc) waitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := p.Ready()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %s: %v", p.name, timeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// mint issues a token for sub, issued a minute ago.
func (c *vigilCluster) mint(sub string) string {
	c.t.Helper()
	tok, err := c.issuer.Mint(map[string]any{"sub": sub, "aud": "api", "sid": "s-" + sub, "client_id": "c", "jti": sub,
		"iat": time.Now().Add(-time.Minute).Unix()}, time.Hour)
	if err != nil {
		c.t.Fatal(err)
	}
	return tok
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (c *vigilCluster) do(method, url string, header map[string]string, body string) (response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return response{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: data}, err
}

// gatewayGet requests /docs/1 through a replica's gateway with tok.
func (c *vigilCluster) gatewayGet(p *replicaProc, tok string, header map[string]string) (response, error) {
	h := map[string]string{"Authorization": "Bearer " + tok}
	for k, v := range header {
		h[k] = v
	}
	return c.do("GET", p.gwURL+"/docs/1", h, "")
}

// revoke records a session revocation through a replica's admin API and
// returns its journal sequence.
func (c *vigilCluster) revoke(p *replicaProc, sub string) (uint64, error) {
	r, err := c.do("POST", p.adminURL+"/admin/v1/signals", map[string]string{"Authorization": "Bearer " + clusterAdminKey},
		fmt.Sprintf(`{"kind":"session-revoked","subject":{"format":"opaque","id":%q}}`, sub))
	if err != nil {
		return 0, err
	}
	if r.status != 200 {
		return 0, fmt.Errorf("revoke %s on %s: %d %s", sub, p.name, r.status, r.body)
	}
	var out struct {
		Seq uint64 `json:"seq"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil || out.Seq == 0 {
		return 0, fmt.Errorf("revoke %s: no seq in %s", sub, r.body)
	}
	return out.Seq, nil
}

// push activates a one-file bundle through a replica's admin API and
// returns the version and policy sequence.
func (c *vigilCluster) push(p *replicaProc, src string) (string, uint64, error) {
	b, _ := json.Marshal(map[string]any{"files": map[string]string{"main.cedar": src}})
	r, err := c.do("POST", p.adminURL+"/admin/v1/policies", map[string]string{"Authorization": "Bearer " + clusterAdminKey}, string(b))
	if err != nil {
		return "", 0, err
	}
	if r.status != 200 {
		return "", 0, fmt.Errorf("push on %s: %d %s", p.name, r.status, r.body)
	}
	var out struct {
		Version   struct{ ID string } `json:"version"`
		PolicySeq uint64              `json:"policy_seq"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil || out.PolicySeq == 0 {
		return "", 0, fmt.Errorf("push: no policy_seq in %s", r.body)
	}
	return out.Version.ID, out.PolicySeq, nil
}

// batchBody asks whether alice and bob may read one document.
const batchBody = `{"action":{"name":"read"},"resource":{"type":"Doc","id":"1"},"evaluations":[{"subject":{"type":"User","id":"alice"}},{"subject":{"type":"User","id":"bob"}}]}`

// batchResult is an explained AuthZEN batch answer.
type batchResult struct {
	Evaluations []struct {
		Decision bool `json:"decision"`
		Context  struct {
			Vigil struct {
				PolicyVersion string `json:"policy_version"`
				PolicySeq     uint64 `json:"policy_seq"`
				StateSeq      uint64 `json:"state_seq"`
			} `json:"vigil"`
		} `json:"context"`
	} `json:"evaluations"`
}

// evaluate sends the alice/bob batch with an explanation and checks that
// both decisions come from one whole version. It returns that version.
func (c *vigilCluster) evaluate(p *replicaProc, header map[string]string) (string, batchResult, error) {
	h := map[string]string{"X-Vigil-Explain": "true"}
	for k, v := range header {
		h[k] = v
	}
	r, err := c.do("POST", p.mainURL+"/access/v1/evaluations", h, batchBody)
	if err != nil {
		return "", batchResult{}, err
	}
	if r.status != 200 {
		return "", batchResult{}, &statusError{status: r.status, body: string(r.body)}
	}
	var out batchResult
	if err := json.Unmarshal(r.body, &out); err != nil || len(out.Evaluations) != 2 {
		return "", out, fmt.Errorf("bad body from %s: %s", p.name, r.body)
	}
	a, b := out.Evaluations[0], out.Evaluations[1]
	if a.Decision == b.Decision || a.Context.Vigil.PolicyVersion != b.Context.Vigil.PolicyVersion {
		return "", out, fmt.Errorf("decisions from a mixed or partial policy set on %s: %s", p.name, r.body)
	}
	return a.Context.Vigil.PolicyVersion, out, nil
}

type statusError struct {
	status int
	body   string
}

func (e *statusError) Error() string { return fmt.Sprintf("status %d: %s", e.status, e.body) }

// load keeps sending requests until stopped and counts failures.
type load struct {
	stop     atomic.Bool
	wg       sync.WaitGroup
	requests atomic.Int64
	failures atomic.Int64
	first    atomic.Value
}

// startLoad runs workers goroutines, each calling fn in a loop.
func startLoad(workers int, fn func(worker int) error) *load {
	l := &load{}
	for w := range workers {
		l.wg.Go(func() {
			for !l.stop.Load() {
				err := fn(w)
				l.requests.Add(1)
				if err != nil {
					l.failures.Add(1)
					l.first.CompareAndSwap(nil, err.Error())
				}
			}
		})
	}
	return l
}

// end stops the load and fails the test if any request failed.
func (l *load) end(t testing.TB) {
	t.Helper()
	l.stop.Store(true)
	l.wg.Wait()
	if n := l.failures.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed; first: %v", n, l.requests.Load(), l.first.Load())
	}
	t.Logf("%d requests, none failed", l.requests.Load())
}

func minSeq(seq uint64) map[string]string {
	return map[string]string{engine.HeaderMinSeq: fmt.Sprint(seq)}
}

func minPolicySeq(seq uint64) map[string]string {
	return map[string]string{engine.HeaderMinPolicySeq: fmt.Sprint(seq)}
}

// applied records when a replica's live state reached each sequence and
// when each policy version became active there, for lag measurements.
type applied struct {
	mu       sync.Mutex
	seqs     []seqAt
	versions map[string]time.Time
}

type seqAt struct {
	seq uint64
	at  time.Time
}

// watchApplied starts recording p's progress until the test ends.
func watchApplied(t testing.TB, p *replicaProc) *applied {
	a := &applied{versions: map[string]time.Time{}}
	p.Store().Subscribe(func(v *policy.Version) {
		now := time.Now()
		a.mu.Lock()
		if _, ok := a.versions[v.ID]; !ok {
			a.versions[v.ID] = now
		}
		a.mu.Unlock()
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	st := p.State()
	go func() {
		defer close(done)
		for {
			ch := st.Changed()
			select {
			case <-ctx.Done():
				return
			case <-ch:
			}
			now := time.Now()
			a.mu.Lock()
			a.seqs = append(a.seqs, seqAt{st.Seq(), now})
			a.mu.Unlock()
		}
	}()
	return a
}

// seqAt returns when the live state first reached seq, waiting up to
// timeout for it.
func (a *applied) seqTime(seq uint64, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for {
		a.mu.Lock()
		for _, s := range a.seqs {
			if s.seq >= seq {
				a.mu.Unlock()
				return s.at, true
			}
		}
		a.mu.Unlock()
		if time.Now().After(deadline) {
			return time.Time{}, false
		}
		time.Sleep(time.Millisecond)
	}
}

// versionTime returns when version id became active, waiting up to timeout.
func (a *applied) versionTime(id string, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for {
		a.mu.Lock()
		at, ok := a.versions[id]
		a.mu.Unlock()
		if ok {
			return at, true
		}
		if time.Now().After(deadline) {
			return time.Time{}, false
		}
		time.Sleep(time.Millisecond)
	}
}
