package authzen

import (
	"bytes"

	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vigil-authz/vigil/internal/engine"
	"github.com/vigil-authz/vigil/internal/policy"
)

// PIDs of the Todo scenario users (STANDARDS.md §1.7a).
const (
	pidRick   = "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"
	pidMorty  = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"
	pidSummer = "CiRmZDI2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"
	pidBeth   = "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"
	pidJerry  = "CiRmZDQ2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"
)

// repoRoot finds the module root (the directory holding go.mod).
func repoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// compileDir compiles a policy directory into a snapshot.
func compileDir(tb testing.TB, dir string) *policy.Snapshot {
	tb.Helper()
	b, err := policy.LoadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	snap, err := policy.Compile(b)
	if err != nil {
		tb.Fatalf("compile %s: %v", dir, err)
	}
	return snap
}

// compileFiles compiles an in-memory policy set.
func compileFiles(tb testing.TB, files map[string]string) *policy.Snapshot {
	tb.Helper()
	var b policy.Bundle
	for name, data := range files {
		b.Files = append(b.Files, policy.File{Name: name, Data: []byte(data)})
	}
	snap, err := policy.Compile(b)
	if err != nil {
		tb.Fatalf("compile: %v", err)
	}
	return snap
}

func todoSnapshot(tb testing.TB) *policy.Snapshot {
	tb.Helper()
	return compileDir(tb, filepath.Join(repoRoot(tb), "examples", "authzen-todo"))
}

// fixedViews serves one snapshot; swap replaces it (a policy push).
type fixedViews struct {
	p atomic.Pointer[policy.Snapshot]
}

func viewsOf(s *policy.Snapshot) *fixedViews {
	v := &fixedViews{}
	v.p.Store(s)
	return v
}

func (f *fixedViews) View() engine.View { return engine.View{Policies: f.p.Load()} }

func newTodoHandler(tb testing.TB, opts Options) *Handler {
	tb.Helper()
	if opts.Views == nil {
		opts.Views = viewsOf(todoSnapshot(tb)).View
	}
	return New(opts)
}

// post sends a JSON body through the handler.
func post(h http.Handler, path, body string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func bufferOf(s string) *bytes.Buffer { return bytes.NewBufferString(s) }
