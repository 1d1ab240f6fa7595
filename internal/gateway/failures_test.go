package gateway

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rawExchange sends a raw request on a fresh connection and returns the
// status line of the answer ("" when the server closed without one).
func (h *harness) rawExchange(t *testing.T, raw string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(h.url, "http://"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil && line == "" {
		return ""
	}
	return strings.TrimSpace(line)
}

func TestMalformedRequestsAreRejected(t *testing.T) {
	h := newHarness(t)
	big := strings.Repeat("a", 16<<10)
	tests := []struct {
		name string
		raw  string
		want string
	}{
		{
			name: "conflicting Content-Length headers are rejected",
			raw:  "POST /todos/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
			want: "HTTP/1.1 400 Bad Request",
		},
		{
			name: "an unknown transfer coding is rejected",
			raw:  "POST /todos/1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
			want: "HTTP/1.1 501 Not Implemented",
		},
		{
			name: "oversized headers answer 431",
			raw:  "GET /todos/1 HTTP/1.1\r\nHost: x\r\nX-Big: " + big + "\r\n\r\n",
			want: "HTTP/1.1 431 Request Header Fields Too Large",
		},
		{
			name: "the asterisk form is a bad request",
			raw:  "GET * HTTP/1.1\r\nHost: x\r\n\r\n",
			want: "HTTP/1.1 400 Bad Request",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := h.rawExchange(t, tt.raw); got != tt.want {
				t.Errorf("status line = %q, want %q", got, tt.want)
			}
		})
	}
}

// net/http does not reject a request with both Content-Length and
// Transfer-Encoding: it follows RFC 9112 §6.3 for intermediaries, drops
// Content-Length and frames the body by Transfer-Encoding alone. A CL.TE
// smuggling attempt therefore cannot hide a request from the gateway: the
// bytes after the chunked body are parsed, and decided, as a request of
// their own.
func TestSmuggledRequestIsDecidedOnItsOwn(t *testing.T) {
	h := newHarness(t)
	tok := h.token("alice", []string{"member"}, nil)
	smuggled := "GET /admin HTTP/1.1\r\nHost: x\r\n\r\n"
	body := "0\r\n\r\n" + smuggled
	raw := "GET /todos/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok +
		"\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\nTransfer-Encoding: chunked\r\n\r\n" + body

	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(h.url, "http://"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	var statuses []int
	for range 2 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			break
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
	}
	// The first request is alice's (allowed); the second is the smuggled
	// one, which carries no token and is challenged.
	if len(statuses) == 0 || statuses[0] != 200 {
		t.Fatalf("answers %v, want 200 first", statuses)
	}
	if len(statuses) == 2 && statuses[1] != http.StatusUnauthorized {
		t.Fatalf("smuggled request answered %d, want 401", statuses[1])
	}
	t.Logf("answers: %v", statuses)
}

func TestSlowClientIsDisconnected(t *testing.T) {
	h := newHarness(t) // read_header_timeout: 300ms
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	b, err := io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept a connection with unfinished headers open")
	}
	t.Logf("connection closed after %s (answer %q)", time.Since(start).Round(time.Millisecond), firstLine(string(b)))
	if len(b) > 0 && !strings.HasPrefix(string(b), "HTTP/1.1 408") {
		t.Errorf("answer %q, want nothing or 408", firstLine(string(b)))
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\r\n")
	return l
}

func TestShutdownDrainsInFlightRequests(t *testing.T) {
	h := newHarness(t)
	tok := h.token("alice", []string{"member"}, nil)
	type result struct {
		status int
		err    error
	}
	res := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", h.url+"/todos/drain", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client(false).Do(req)
		if err != nil {
			res <- result{err: err}
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		res <- result{status: resp.StatusCode}
	}()
	// The upstream holds /todos/drain for 200ms; shut down while it is in
	// flight.
	waitFor(t, func() bool { return strings.Contains(h.logs.String(), `"msg":"decision"`) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.gw.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	r := <-res
	if r.err != nil || r.status != 200 {
		t.Fatalf("in-flight request: status %d, err %v; want 200", r.status, r.err)
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(h.url, "http://"), time.Second); err == nil {
		t.Errorf("the listener still accepts connections after shutdown")
	}
}
