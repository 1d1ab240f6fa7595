package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/vigil-authz/vigil/internal/config"
	"github.com/vigil-authz/vigil/internal/gateway"
	"github.com/vigil-authz/vigil/internal/geotest"
	"github.com/vigil-authz/vigil/internal/identity"
	"github.com/vigil-authz/vigil/internal/risk"
	"github.com/vigil-authz/vigil/internal/route"
	"github.com/vigil-authz/vigil/internal/state"
)

// Client networks of the risk scenarios, located by riskGeoDB.
const (
	berlinIP  = "2001:db8::10"  // Berlin, DE
	berlinIP2 = "198.51.100.5"  // Berlin, DE (another network)
	newYorkIP = "192.0.2.10"    // New York, US
	hostingIP = "203.0.113.66"  // Amsterdam, NL (a hosting provider)
	officeIP  = "198.51.100.23" // Berlin, DE
	scraperIP = "198.51.100.77" // Berlin, DE
	mfaACR    = "urn:vigil:mfa" // examples/risk step-up
	todoAud   = "todo-api"      // token audience
)

// riskGeoDB writes a GeoIP2-City-shaped database with coordinates.
func riskGeoDB(t *testing.T) string {
	t.Helper()
	city := func(iso, name string, lat, lon float64) mmdbtype.Map {
		return geotest.Located(geotest.City(iso, name), lat, lon, 20)
	}
	return geotest.WriteCityDB(t, map[string]mmdbtype.Map{
		"2001:db8::/32":   city("DE", "Berlin", 52.52, 13.405),
		"198.51.100.0/24": city("DE", "Berlin", 52.52, 13.405),
		"192.0.2.0/24":    city("US", "New York", 40.7128, -74.006),
		"203.0.113.0/24":  city("NL", "Amsterdam", 52.37, 4.9),
	})
}

// setReceiver collects risk SETs pushed to it.
type setReceiver struct {
	mu   sync.Mutex
	sets []string
}

func (r *setReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.sets = append(r.sets, string(b))
	r.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

func (r *setReceiver) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.sets...)
}

// riskServer is a full Vigil (live state, policies from examples/risk,
// admin API, risk engine) with a gateway fed into the risk engine.
type riskServer struct {
	*Server
	eng      *risk.Engine
	issuer   *identity.LocalIssuer
	gwURL    string
	receiver *setReceiver
}

func startRiskServer(t *testing.T) *riskServer {
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
	rcv := &setReceiver{}
	rcvSrv := httptest.NewServer(rcv)
	t.Cleanup(rcvSrv.Close)

	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Policies.Dir = "../../examples/risk/policies"
	cfg.Server.Addr, cfg.Server.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Gateway.Listen = "127.0.0.1:0"
	cfg.Gateway.Upstreams = []gateway.Upstream{{Name: "todo", URL: upstream.URL}}
	cfg.Gateway.TrustedProxies = []string{"127.0.0.1/32"}
	cfg.Gateway.GeoIP = riskGeoDB(t)
	cfg.Gateway.DeviceHeader = "X-Device-ID"
	cfg.Identity.Issuers = []identity.IssuerConfig{li.IssuerConfig(todoAud)}
	cfg.Routing.Routes = []route.Route{
		{Method: route.Methods{"GET", "PUT"}, Path: "/todos/{id}", Resource: route.Resource{Type: "Todo"}},
		{Method: route.Methods{"GET"}, Path: "/admin/users/{id}", Resource: route.Resource{Type: "Account"}},
	}
	cfg.Risk.Outbound.Issuer = "https://vigil.test"
	cfg.Risk.Outbound.Receivers = []risk.Receiver{{Name: "idp", Endpoint: rcvSrv.URL + "/ssf/push"}}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	eng := s.risk
	if eng == nil {
		t.Fatal("the risk engine is not running")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for s.Ready() != nil || s.ListenerAddr("gateway") == nil {
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v", s.Ready())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &riskServer{Server: s, eng: eng, issuer: li, gwURL: "http://" + s.ListenerAddr("gateway").String(), receiver: rcv}
}

// token mints an access token for sub (a member) with a session.
func (rs *riskServer) token(t *testing.T, sub, sid string) string {
	t.Helper()
	tok, err := rs.issuer.Mint(map[string]any{"sub": sub, "aud": todoAud, "client_id": "todo-web", "roles": []string{"member"}, "sid": sid}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// get sends one request through the gateway from client address from and
// waits until the risk engine has scored it (and journalled what it
// caused), so that the next request sees the result.
func (rs *riskServer) get(t *testing.T, tok, path, from, agent string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", rs.gwURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Forwarded-For", from)
	req.Header.Set("User-Agent", agent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rs.eng.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

const browser = "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0"

// TestRiskScenarios replays synthetic traffic through the gateway with the
// example policies (examples/risk: HIGH denied, MEDIUM stepped up) and
// checks when the attackers are stopped — and that a normal user is not.
func TestRiskScenarios(t *testing.T) {
	rs := startRiskServer(t)
	isStepUp := func(code int, auth string) bool {
		return code == 401 && strings.Contains(auth, `error="insufficient_user_authentication"`) && strings.Contains(auth, `acr_values="`+mfaACR+`"`)
	}

	t.Run("a credential-stuffing bot is denied from its second request with a working token", func(t *testing.T) {
		for i := range 30 {
			forged := fmt.Sprintf("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c2VyLSVkIn0.%d", i)
			if code, _ := rs.get(t, forged, "/todos/1", hostingIP, "python-requests/2.31"); code != 401 {
				t.Fatalf("forged token %d: status %d", i, code)
			}
		}
		dave := rs.token(t, "dave", "s-dave-bot")
		// Decided before the engine has seen dave from that address.
		if code, _ := rs.get(t, dave, "/todos/1", hostingIP, "python-requests/2.31"); code != 200 {
			t.Fatalf("first request with the stolen token: %d", code)
		}
		if code, _ := rs.get(t, dave, "/todos/2", hostingIP, "python-requests/2.31"); code != 403 {
			t.Fatalf("second request with the stolen token: %d, want 403", code)
		}
		// The account is HIGH: its owner is stopped too until the risk fades
		// or an administrator lowers it.
		if code, _ := rs.get(t, rs.token(t, "dave", "s-dave"), "/todos/1", berlinIP2, browser); code != 403 {
			t.Fatalf("dave's own session: %d, want 403", code)
		}
	})

	t.Run("a bot probing with a valid token is stepped up after 20 denials and denied after 50", func(t *testing.T) {
		mallory := rs.token(t, "mallory", "s-mallory")
		for i := 1; i <= 20; i++ {
			if code, _ := rs.get(t, mallory, fmt.Sprintf("/admin/users/%d", i%5), officeIP, "probe/1"); code != 403 {
				t.Fatalf("probe %d: status %d, want 403", i, code)
			}
		}
		if code, auth := rs.get(t, mallory, "/todos/1", officeIP, "probe/1"); !isStepUp(code, auth) { // refusal 21
			t.Fatalf("after 20 denials (MEDIUM): %d %q, want a step-up challenge", code, auth)
		}
		for i := 22; i <= 50; i++ {
			if code, auth := rs.get(t, mallory, fmt.Sprintf("/admin/users/%d", i%5), officeIP, "probe/1"); !isStepUp(code, auth) {
				t.Fatalf("probe %d at MEDIUM: %d %q, want a step-up challenge", i, code, auth)
			}
		}
		if code, _ := rs.get(t, mallory, "/todos/1", officeIP, "probe/1"); code != 403 {
			t.Fatalf("after 50 refusals (HIGH): %d, want 403", code)
		}
	})

	t.Run("a token used from two continents is denied right after its first request from the second", func(t *testing.T) {
		erin := rs.token(t, "erin", "s-erin")
		for i := range 3 {
			if code, _ := rs.get(t, erin, fmt.Sprintf("/todos/%d", i), berlinIP, browser); code != 200 {
				t.Fatalf("Berlin request %d: %d", i, code)
			}
		}
		if code, _ := rs.get(t, erin, "/todos/7", newYorkIP, "curl/8.5"); code != 200 {
			t.Fatalf("first request from New York (decided before the engine saw it): %d", code)
		}
		if code, _ := rs.get(t, erin, "/todos/8", newYorkIP, "curl/8.5"); code != 403 {
			t.Fatalf("second request from New York: %d, want 403", code)
		}
		if code, _ := rs.get(t, erin, "/todos/1", berlinIP, browser); code != 403 {
			t.Fatalf("the session back in Berlin: %d, want 403", code)
		}
		u := rs.State().Current().Facts(state.Query{Issuer: rs.issuer.Issuer(), Subject: "erin"}).Risk
		if u.Level != "HIGH" || !strings.HasPrefix(strings.Join(u.Reasons, "|"), "impossible_travel: this user moved 6385 km (DE → US)") {
			t.Errorf("live state: %+v", u)
		}
	})

	t.Run("an enumerating scraper is stepped up after about 60 resources and denied soon after", func(t *testing.T) {
		frank := rs.token(t, "frank", "s-frank")
		stepUpAt, deniedAt := 0, 0
		for i := 1; i <= 300 && deniedAt == 0; i++ {
			code, auth := rs.get(t, frank, fmt.Sprintf("/todos/%d", i), scraperIP, "scrapy/2.11")
			switch {
			case code == 200:
			case isStepUp(code, auth):
				if stepUpAt == 0 {
					stepUpAt = i
				}
			case code == 403:
				deniedAt = i
			default:
				t.Fatalf("request %d: %d %q", i, code, auth)
			}
		}
		t.Logf("scraper: first step-up at request %d, denied at request %d", stepUpAt, deniedAt)
		// ~60 distinct resources make it MEDIUM (enumeration, an estimate);
		// 20 ignored step-up challenges more add denied_burst: HIGH.
		if stepUpAt < 50 || stepUpAt > 80 {
			t.Errorf("first step-up at request %d, want 50-80", stepUpAt)
		}
		if deniedAt == 0 || deniedAt > stepUpAt+25 {
			t.Errorf("denied at request %d, want within 25 requests of the step-up", deniedAt)
		}
	})

	t.Run("a normal user with a legitimate burst stays LOW", func(t *testing.T) {
		carol := rs.token(t, "carol", "s-carol")
		for i := range 20 {
			if code, _ := rs.get(t, carol, fmt.Sprintf("/todos/%d", i%10), berlinIP2, browser); code != 200 {
				t.Fatalf("request %d: %d", i, code)
			}
		}
		// A dashboard loads: 100 calls over 40 todos in a few seconds.
		for i := range 100 {
			if code, _ := rs.get(t, carol, fmt.Sprintf("/todos/%d", i%40), berlinIP2, browser); code != 200 {
				t.Fatalf("burst request %d: %d", i, code)
			}
		}
		rep := rs.eng.Inspect(risk.ReportQuery{Subject: "carol"})
		if len(rep.Subjects) != 1 || rep.Subjects[0].Level != "LOW" || len(rep.Subjects[0].Contributions) != 0 {
			t.Fatalf("carol: %+v", rep.Subjects)
		}
		if r := rs.State().Current().Facts(state.Query{Issuer: rs.issuer.Issuer(), Subject: "carol"}).Risk; r.Level != "" {
			t.Fatalf("a risk was journalled for carol: %+v", r)
		}
	})

	t.Run("the admin API shows a user's score, level and each contribution", func(t *testing.T) {
		code, body := do(t, rs.AdminHandler(), "GET", "/admin/v1/risk?sub=erin", rs.AdminToken, "")
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		var rep risk.Report
		if err := json.Unmarshal([]byte(body), &rep); err != nil {
			t.Fatal(err)
		}
		if len(rep.Subjects) != 1 || rep.Subjects[0].Level != "HIGH" || len(rep.Subjects[0].Contributions) == 0 ||
			rep.Subjects[0].Contributions[0].Detector != "impossible_travel" || len(rep.Subjects[0].Sessions) != 1 {
			t.Fatalf("report: %s", body)
		}
		if code, _ := do(t, rs.AdminHandler(), "GET", "/admin/v1/risk?sub=erin", "", ""); code != 401 {
			t.Fatalf("without the admin token: %d", code)
		}
	})

	t.Run("risk metrics are on /metrics", func(t *testing.T) {
		code, body := do(t, rs.AdminHandler(), "GET", "/metrics", "", "")
		for _, m := range []string{`vigil_risk_events_total{result="processed"}`, `vigil_risk_events_total{result="dropped"} 0`, `vigil_risk_changes_total{level="HIGH"}`, "vigil_risk_detections_total"} {
			if code != 200 || !strings.Contains(body, m) {
				t.Errorf("/metrics lacks %s", m)
			}
		}
	})

	t.Run("level changes go out as signed CAEP SETs, verifiable with the served JWKS", func(t *testing.T) {
		code, jwks := do(t, rs.MainHandler(), "GET", RiskJWKSPath, "", "")
		if code != 200 {
			t.Fatalf("JWKS: %d", code)
		}
		keys, err := jwk.Parse([]byte(jwks))
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			for _, set := range rs.receiver.all() {
				payload, err := jws.Verify([]byte(set), jws.WithKeySet(keys))
				if err != nil {
					t.Fatalf("SET does not verify: %v", err)
				}
				if strings.Contains(string(payload), `"sub":"erin"`) && strings.Contains(string(payload), `"current_level":"HIGH"`) {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no SET about erin among %d", len(rs.receiver.all()))
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func TestRiskIsOffWithoutTheGateway(t *testing.T) {
	s := newTestServer(t, policyDir(t, map[string]string{"main.cedar": `@id("all") permit(principal, action, resource);`}))
	eng, err := s.setupRisk()
	if err != nil || eng != nil {
		t.Fatalf("setupRisk without a gateway = %v, %v", eng, err)
	}
	if riskObserver(nil) != nil {
		t.Fatal("no engine must mean no Observe hook")
	}
}

func TestRiskExampleConfigLoads(t *testing.T) {
	cfg, err := config.Load("../../examples/risk/vigil.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.GatewayEnabled() || !cfg.Risk.IsEnabled() || cfg.Risk.Detectors.Enumeration.Threshold != 60 {
		t.Fatalf("risk section: %+v", cfg.Risk)
	}
}
