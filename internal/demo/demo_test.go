package demo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

var update = flag.Bool("update", false, "rewrite golden files")

// running is a demo started by startDemo.
type running struct {
	tour *Tour
	env  map[string]string
	logs *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

// startDemo runs the demo in-process on ephemeral ports (three loopback
// addresses, since the listeners must differ) and stops it at the end of
// the test.
func startDemo(t *testing.T) *running {
	t.Helper()
	logs := &lockedBuffer{}
	ready := make(chan *Tour, 1)
	d, err := New(Options{
		Addr:      "127.0.0.1:0",
		PDPAddr:   "127.0.0.2:0",
		AdminAddr: "127.0.0.3:0",
		DataDir:   t.TempDir(),
		Out:       io.Discard,
		Log:       slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Ready:     func(tr *Tour) { ready <- tr },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("demo stopped with an error: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("demo did not stop within 20s of cancellation")
		}
		if t.Failed() {
			logs.mu.Lock()
			t.Logf("demo logs:\n%s", logs.String())
			logs.mu.Unlock()
		}
	})
	select {
	case tr := <-ready:
		return &running{tour: tr, env: tr.Env(), logs: logs}
	case err := <-done:
		t.Fatalf("demo stopped before it was ready: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("demo not ready after 30s:\n%s", logs.String())
	}
	return nil
}

func (r *running) do(t *testing.T, s Step) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	req, err := s.NewRequest(ctx, r.env)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", s.Title, err)
	}
	return resp
}

func TestTour(t *testing.T) {
	r := startDemo(t)
	for i, s := range r.tour.Steps {
		t.Run(s.Title, func(t *testing.T) {
			resp := r.do(t, s)
			defer resp.Body.Close()
			var body []byte
			if s.Stream {
				// Long-lived: check the status and the first bytes only.
				buf := make([]byte, 64)
				n, _ := io.ReadAtLeast(resp.Body, buf, 1)
				body = buf[:n]
			} else {
				body, _ = io.ReadAll(resp.Body)
			}
			if resp.StatusCode != s.Status {
				t.Fatalf("step %d answered %d, the tour promises %d; body:\n%s", i+1, resp.StatusCode, s.Status, body)
			}
			if strings.HasPrefix(s.Then, "error=") || strings.HasPrefix(s.Then, "WWW-Authenticate") {
				want := strings.TrimPrefix(s.Then, "WWW-Authenticate: ")
				for part := range strings.SplitSeq(want, ", ") {
					if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, part) {
						t.Errorf("WWW-Authenticate = %q, want it to contain %q", got, part)
					}
				}
			}
			if strings.HasPrefix(s.Then, "{") {
				var got, want any
				if err := json.Unmarshal(body, &got); err != nil {
					t.Fatalf("body is not JSON: %v\n%s", err, body)
				}
				_ = json.Unmarshal([]byte(s.Then), &want)
				if gm, ok := got.(map[string]any); !ok || gm["decision"] != want.(map[string]any)["decision"] {
					t.Errorf("body = %s, want %s", body, s.Then)
				}
			}
		})
	}
}

func TestCreateRecordsTheVerifiedCallerAsOwner(t *testing.T) {
	r := startDemo(t)
	resp := r.do(t, Step{Method: http.MethodPost, Base: VarGateway, Path: "/documents", Bearer: "BOB", JSON: `{"title":"Mine"}`})
	defer resp.Body.Close()
	var d Document
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %v", resp.StatusCode, err)
	}
	if d.Owner != "bob" {
		t.Errorf("owner = %q, want bob (from the gateway's X-Vigil-Subject)", d.Owner)
	}
}

// TestStreamsAreClosedWhenAPolicyPushSuspendsTheUser shows the live
// cut-off the tour promises: bob's event stream and WebSocket end as soon
// as the suspending policy set is pushed.
func TestStreamsAreClosedWhenAPolicyPushSuspendsTheUser(t *testing.T) {
	r := startDemo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	sse := r.do(t, Step{Method: http.MethodGet, Base: VarGateway, Path: "/events", Bearer: "BOB"})
	defer sse.Body.Close()
	if sse.StatusCode != http.StatusOK {
		t.Fatalf("events: %d", sse.StatusCode)
	}
	lines := bufio.NewReader(sse.Body)
	if line, err := lines.ReadString('\n'); err != nil || line != "event: tick\n" {
		t.Fatalf("first event line = %q, %v", line, err)
	}

	wsURL := strings.Replace(r.env[VarGateway], "http://", "ws://", 1) + "/ws"
	ws, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + r.env["BOB"]}},
	})
	if err != nil {
		t.Fatalf("dial websocket: %v", err)
	}
	defer ws.CloseNow()
	if _, msg, err := ws.Read(ctx); err != nil || !strings.Contains(string(msg), `"for":"bob"`) {
		t.Fatalf("first websocket message = %s, %v", msg, err)
	}

	push := r.do(t, Step{Method: http.MethodPost, Base: VarAdmin, Path: "/admin/v1/policies", Bearer: VarAdminKey, JSONFile: "push/suspend-bob.json"})
	push.Body.Close()
	if push.StatusCode != http.StatusOK {
		t.Fatalf("push: %d", push.StatusCode)
	}

	// The stream ends: reads run into EOF or an error, not into an
	// endless series of ticks.
	sseDone := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, lines)
		sseDone <- err
	}()
	select {
	case <-sseDone:
	case <-ctx.Done():
		t.Fatal("the event stream was still open after the suspending push")
	}
	for {
		_, _, err := ws.Read(ctx)
		if err == nil {
			continue // ticks already in flight
		}
		if got := websocket.CloseStatus(err); got != websocket.StatusPolicyViolation {
			t.Fatalf("websocket ended with %v (status %d), want close status 1008", err, got)
		}
		break
	}
}

func TestRevocationClosesTheUsersStream(t *testing.T) {
	r := startDemo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sse := r.do(t, Step{Method: http.MethodGet, Base: VarGateway, Path: "/events", Bearer: "CAROL"})
	defer sse.Body.Close()
	lines := bufio.NewReader(sse.Body)
	if line, err := lines.ReadString('\n'); err != nil || line != "event: tick\n" {
		t.Fatalf("first event line = %q, %v", line, err)
	}
	revoke := r.do(t, Step{Method: http.MethodPost, Base: VarAdmin, Path: "/admin/v1/signals", Bearer: VarAdminKey,
		JSON: `{"kind":"session-revoked","subject":{"format":"opaque","id":"carol"}}`})
	revoke.Body.Close()
	if revoke.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d", revoke.StatusCode)
	}
	ended := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, lines)
		close(ended)
	}()
	select {
	case <-ended:
	case <-ctx.Done():
		t.Fatal("carol's event stream was still open after her sessions were revoked")
	}
}

// TestEmbeddedPoliciesAreTheExampleFiles keeps examples/demo/ and the
// embedded copy identical.
func TestEmbeddedPoliciesAreTheExampleFiles(t *testing.T) {
	set, err := PolicyFiles()
	if err != nil {
		t.Fatal(err)
	}
	if len(set) == 0 {
		t.Fatal("no embedded policy files")
	}
	for name, data := range set {
		example, err := os.ReadFile(filepath.Join("..", "..", "examples", "demo", "policies", name))
		if err != nil {
			t.Fatalf("examples/demo/policies/%s: %v (copy internal/demo/policies/%s there)", name, err, name)
		}
		if !bytes.Equal(example, data) {
			t.Errorf("examples/demo/policies/%s differs from internal/demo/policies/%s; keep them identical", name, name)
		}
	}
	changes, err := readDir("changes")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range changes {
		example, err := os.ReadFile(filepath.Join("..", "..", "examples", "demo", "changes", name))
		if err != nil || !bytes.Equal(example, data) {
			t.Errorf("examples/demo/changes/%s must equal internal/demo/changes/%s (%v)", name, name, err)
		}
	}
}

// TestTourText pins the printed tour (with placeholder addresses and
// tokens) in a golden file; run with -update after a deliberate change.
func TestTourText(t *testing.T) {
	tr := &Tour{
		Vars: []Var{
			{VarGateway, "http://127.0.0.1:8000"}, {VarPDP, "http://127.0.0.1:8001"},
			{VarAdmin, "http://127.0.0.1:8002"}, {VarDataDir, "/tmp/vigil-demo"}, {VarAdminKey, "ADMIN-TOKEN"},
		},
		Steps:     Steps(),
		TokenTTL:  DefaultTokenTTL,
		PolicyDir: "/tmp/vigil-demo/policies",
		Issuer:    "http://127.0.0.1:40000",
	}
	for _, u := range Users() {
		u.Token = "TOKEN-OF-" + strings.ToUpper(u.Name)
		tr.Users = append(tr.Users, u)
	}
	var b bytes.Buffer
	if err := tr.Write(&b); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "tour.golden")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("tour text changed; run go test ./internal/demo -run TestTourText -update and review the diff\ngot:\n%s", b.String())
	}
}

func TestRunReportsAnAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d, err := New(Options{Addr: ln.Addr().String(), PDPAddr: "127.0.0.2:0", AdminAddr: "127.0.0.3:0", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("Run = %v, want the listen error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after failing to listen")
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"an address without a port is rejected", Options{Addr: "localhost"}},
		{"a token lifetime under a minute is rejected", Options{TokenTTL: time.Second}},
		{"a token lifetime over a week is rejected", Options{TokenTTL: 200 * time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.opts); err == nil {
				t.Fatal("New accepted the options")
			}
		})
	}
}
