package gateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/vigil-authz/vigil/internal/identity"
)

// cutDeadline bounds how long a denied stream may stay open in the tests.
// The target is well under 100 ms; the bound is generous so that a loaded
// CI machine does not make the test flaky. The measured latency is logged.
const cutDeadline = 2 * time.Second

// openStream starts a streaming GET and returns its body reader once the
// first chunk has arrived.
func (h *harness) openStream(t *testing.T, path, tok string) (*bufio.Reader, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", h.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	c := client(false)
	c.Timeout = 0
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: status %d: %s", path, resp.StatusCode, b)
	}
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatalf("GET %s: first line: %v", path, err)
	}
	return br, func() { cancel(); resp.Body.Close() }
}

// readsUntilEnd reads lines until the body ends and reports the time it
// took; it fails the test after cutDeadline.
func readsUntilEnd(t *testing.T, br *bufio.Reader) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := br.ReadString('\n'); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		return time.Since(start), err
	case <-time.After(cutDeadline):
		t.Fatalf("stream still open %s after the policy change", cutDeadline)
		return 0, nil
	}
}

// stillFlows checks that a stream keeps delivering lines.
func stillFlows(t *testing.T, br *bufio.Reader) {
	t.Helper()
	for i := 0; i < 3; i++ {
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatalf("unaffected stream ended: %v", err)
		}
	}
}

func TestStreamsAreCutWhenPolicyDenies(t *testing.T) {
	for _, path := range []string{"/events", "/stream"} {
		kind := map[string]string{"/events": StreamKindSSE, "/stream": StreamKindStreaming}[path]
		t.Run("a "+kind+" response of a user who loses access ends while others continue", func(t *testing.T) {
			h := newHarness(t)
			bob, stopBob := h.openStream(t, path, h.token("bob", []string{"member"}, nil))
			defer stopBob()
			alice, stopAlice := h.openStream(t, path, h.token("alice", []string{"member"}, nil))
			defer stopAlice()
			if n := len(h.gw.Streams()); n != 2 {
				t.Fatalf("%d streams registered, want 2", n)
			}

			h.setPolicies("todo.cedar", "bob-blocked.cedar.txt")
			start := time.Now()
			h.gw.Reevaluate()
			took, err := readsUntilEnd(t, bob)
			t.Logf("%s cut %s after Reevaluate (%s reading)", kind, time.Since(start), took)
			if !errors.Is(err, io.EOF) {
				t.Errorf("stream ended with %v, want a clean end (io.EOF)", err)
			}
			stillFlows(t, alice)
			waitFor(t, func() bool { return len(h.gw.Streams()) == 1 })
			if s := h.gw.Streams()[0]; s.Principal != `User::"alice"` || s.Kind != kind {
				t.Errorf("remaining stream = %+v", s)
			}
		})
	}
}

func TestWebSocketIsClosedWhenPolicyDenies(t *testing.T) {
	h := newHarness(t)
	dial := func(sub string) *websocket.Conn {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.url, "http")+"/ws", &websocket.DialOptions{
			HTTPHeader:   bearerHeader(h.token(sub, []string{"member"}, nil)),
			Subprotocols: []string{"echo.v1"},
		})
		if err != nil {
			t.Fatalf("dial as %s: %v (response %v)", sub, err, resp)
		}
		if c.Subprotocol() != "echo.v1" {
			t.Errorf("subprotocol = %q, want the upstream's choice echo.v1", c.Subprotocol())
		}
		return c
	}
	roundTrip := func(c *websocket.Conn, msg string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatalf("write: %v", err)
		}
		_, got, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if string(got) != "echo: "+msg {
			t.Fatalf("read %q, want %q", got, "echo: "+msg)
		}
	}
	bob := dial("bob")
	defer bob.CloseNow()
	alice := dial("alice")
	defer alice.CloseNow()
	roundTrip(bob, "hello")
	roundTrip(alice, "hello")

	t.Run("a user who loses access gets close code 1008 while others continue", func(t *testing.T) {
		h.setPolicies("todo.cedar", "bob-blocked.cedar.txt")
		start := time.Now()
		h.gw.Reevaluate()
		ctx, cancel := context.WithTimeout(context.Background(), cutDeadline)
		defer cancel()
		_, _, err := bob.Read(ctx)
		t.Logf("WebSocket closed %s after Reevaluate", time.Since(start))
		if code := websocket.CloseStatus(err); code != websocket.StatusPolicyViolation {
			t.Fatalf("read error %v (close code %d), want close code 1008", err, code)
		}
		roundTrip(alice, "still here")
	})

	t.Run("a client's close ends the session on both sides", func(t *testing.T) {
		if err := alice.Close(websocket.StatusNormalClosure, "bye"); err != nil {
			t.Fatalf("close: %v", err)
		}
		waitFor(t, func() bool { return len(h.gw.Streams()) == 0 })
	})
}

func TestWebSocketCloseCodesAreRelayed(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.url, "http")+"/ws", &websocket.DialOptions{
		HTTPHeader: bearerHeader(h.token("alice", []string{"member"}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte("please close")); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4001 || ce.Reason != "as you wish" {
		t.Fatalf("read error %v, want the upstream's close 4001 \"as you wish\"", err)
	}
	waitFor(t, func() bool { return len(h.gw.Streams()) == 0 })
}

func TestWebSocketUpgradeRequiresAuthorization(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.url, "http")+"/ws", &websocket.DialOptions{
		HTTPHeader: bearerHeader(h.token("nobody", nil, nil)),
	})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("dial without permission: err %v, response %v; want 403", err, resp)
	}
}

func TestShutdownClosesStreams(t *testing.T) {
	h := newHarness(t)
	sse, stop := h.openStream(t, "/events", h.token("alice", []string{"member"}, nil))
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.gw.Shutdown(ctx) }()
	if _, err := readsUntilEnd(t, sse); !errors.Is(err, io.EOF) {
		t.Errorf("stream ended with %v, want io.EOF", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(cutDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReevaluateManyStreamsConcurrently(t *testing.T) {
	g := newOfflineGateway(t, fakeAuth{}, "")
	tokens := map[string]*identity.Token{}
	for _, raw := range []string{"alice", "admin"} {
		tok, err := fakeAuth{}.Verify(context.Background(), raw)
		if err != nil {
			t.Fatal(err)
		}
		tokens[raw] = tok
	}
	m, err := g.router.Match("GET", "/admin")
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	var cuts atomic.Int64
	codes := make([]atomic.Int64, n)
	for i := range n {
		who := "alice" // a member may not GET /admin: cut
		if i%2 == 0 {
			who = "admin"
		}
		s := &stream{kind: StreamKindStreaming, call: &call{id: strconv.Itoa(i), method: "GET", path: "/admin", token: tokens[who], match: m}}
		s.cut = func(code websocket.StatusCode, _ string) {
			cuts.Add(1)
			codes[i].Store(int64(code))
		}
		g.register(s)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(g.Reevaluate)
	}
	wg.Wait()
	g.Reevaluate() // covers any pass still pending when the others returned
	if got := cuts.Load(); got != n/2 {
		t.Fatalf("%d streams cut, want %d (each denied stream exactly once)", got, n/2)
	}
	for i := range n {
		want := int64(websocket.StatusPolicyViolation)
		if i%2 == 0 {
			want = 0
		}
		if got := codes[i].Load(); got != want {
			t.Fatalf("stream %d: close code %d, want %d", i, got, want)
		}
	}
}

func TestWebSocketToDownUpstreamAnswers502(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.url, "http")+"/down", &websocket.DialOptions{
		HTTPHeader: bearerHeader(h.token("alice", []string{"member"}, nil)),
	})
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("dial: err %v, response %v; want 502", err, resp)
	}
}
