package main

// End-to-end tests: they build the real vigil binary and drive it over
// HTTP on loopback, exactly as a user would.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// vigilBinary builds cmd/vigil once per test run.
func vigilBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vigil-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "vigil")
		if runtime.GOOS == "windows" {
			binPath += ".exe"
		}
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// freePort returns a loopback address with a port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// instance is a running `vigil serve`.
type instance struct {
	Addr, AdminAddr, DataDir string
	cmd                      *exec.Cmd
	logs                     *bytes.Buffer
	done                     chan struct{}
}

func (in *instance) URL(path string) string      { return "http://" + in.Addr + path }
func (in *instance) AdminURL(path string) string { return "http://" + in.AdminAddr + path }

// AdminToken reads the generated admin token.
func (in *instance) AdminToken(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(in.DataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

type syncBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

// startVigil runs `vigil serve` with args plus listener flags, waits until
// /readyz answers 200 (or until wantReady is false and /healthz answers),
// and stops the process at the end of the test.
func startVigil(t *testing.T, wantReady bool, args ...string) *instance {
	t.Helper()
	bin := vigilBinary(t)
	in := &instance{Addr: freePort(t), AdminAddr: freePort(t), DataDir: t.TempDir(), done: make(chan struct{})}
	full := append([]string{"serve", "--addr", in.Addr, "--admin-addr", in.AdminAddr, "--data-dir", in.DataDir}, args...)
	in.cmd = exec.Command(bin, full...)
	logs := &syncBuffer{}
	in.cmd.Stdout, in.cmd.Stderr = logs, logs
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = in.cmd.Wait(); close(in.done) }()
	t.Cleanup(func() {
		_ = in.cmd.Process.Signal(os.Interrupt)
		select {
		case <-in.done:
		case <-time.After(10 * time.Second):
			_ = in.cmd.Process.Kill()
			<-in.done
		}
		if t.Failed() {
			logs.mu.Lock()
			t.Logf("vigil logs:\n%s", logs.String())
			logs.mu.Unlock()
		}
	})
	path := "/readyz"
	if !wantReady {
		path = "/healthz"
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-in.done:
			t.Fatalf("vigil exited early:\n%s", logs.String())
		default:
		}
		resp, err := http.Get(in.URL(path))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return in
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("vigil not ready after 60s:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// postJSON posts v and returns status, headers and body.
func postJSON(t *testing.T, url string, v any, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	var body io.Reader
	switch b := v.(type) {
	case []byte:
		body = bytes.NewReader(b)
	case string:
		body = strings.NewReader(b)
	default:
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, data
}

// repoRoot is the repository root, two levels up from cmd/vigil.
func repoRoot() string { return filepath.Join("..", "..") }
