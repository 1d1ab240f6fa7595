package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// conformanceFile is the AuthZEN Todo interop vector set, shipped beside
// the repository in shared/conformance.
func conformanceFile(t *testing.T) []byte {
	t.Helper()
	path := filepath.Join(repoRoot(), "..", "shared", "conformance", "authzen-todo-decisions.json")
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		t.Skipf("AuthZEN conformance vectors not found at %s (they live in ../shared/conformance beside the repository)", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestAuthZENTodoConformance runs every case of the AuthZEN Todo interop
// vectors against a real `vigil serve --policies examples/authzen-todo`,
// the way the interop harness does: raw JSON over HTTP, batch results
// compared byte for byte.
func TestAuthZENTodoConformance(t *testing.T) {
	var vectors struct {
		Evaluation []struct {
			Request  json.RawMessage `json:"request"`
			Expected bool            `json:"expected"`
		} `json:"evaluation"`
		Evaluations []struct {
			Request  json.RawMessage `json:"request"`
			Expected json.RawMessage `json:"expected"`
		} `json:"evaluations"`
	}
	if err := json.Unmarshal(conformanceFile(t), &vectors); err != nil {
		t.Fatal(err)
	}
	if len(vectors.Evaluation)+len(vectors.Evaluations) != 43 {
		t.Fatalf("expected 43 vectors, found %d + %d", len(vectors.Evaluation), len(vectors.Evaluations))
	}
	in := startVigil(t, true, "--policies", filepath.Join(repoRoot(), "examples", "authzen-todo"))

	for i, v := range vectors.Evaluation {
		t.Run(fmt.Sprintf("evaluation %d", i), func(t *testing.T) {
			status, _, body := postJSON(t, in.URL("/access/v1/evaluation"), []byte(v.Request), nil)
			if status != 200 {
				t.Fatalf("status %d: %s", status, body)
			}
			want := fmt.Sprintf(`{"decision":%t}`, v.Expected)
			if got := string(bytes.TrimSpace(body)); got != want {
				t.Errorf("request %s\n got %s\nwant %s", v.Request, got, want)
			}
		})
	}
	for i, v := range vectors.Evaluations {
		t.Run(fmt.Sprintf("evaluations %d", i), func(t *testing.T) {
			status, _, body := postJSON(t, in.URL("/access/v1/evaluations"), []byte(v.Request), nil)
			if status != 200 {
				t.Fatalf("status %d: %s", status, body)
			}
			var resp struct {
				Evaluations json.RawMessage `json:"evaluations"`
			}
			if err := json.Unmarshal(body, &resp); err != nil {
				t.Fatalf("decode %s: %v", body, err)
			}
			// The interop harness compares JSON.stringify(evaluations).
			var want bytes.Buffer
			if err := json.Compact(&want, v.Expected); err != nil {
				t.Fatal(err)
			}
			if got := string(resp.Evaluations); got != want.String() {
				t.Errorf("request %s\n got %s\nwant %s", v.Request, got, want.String())
			}
		})
	}
}
