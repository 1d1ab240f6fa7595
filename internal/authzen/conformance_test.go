package authzen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// todoVectors is the AuthZEN interop decision file
// (decisions-authorization-api-1_0-02.json).
type todoVectors struct {
	Evaluation []struct {
		Request  json.RawMessage `json:"request"`
		Expected bool            `json:"expected"`
	} `json:"evaluation"`
	Evaluations []struct {
		Request  json.RawMessage `json:"request"`
		Expected json.RawMessage `json:"expected"`
	} `json:"evaluations"`
}

// TestTodoConformance replays every case of the Todo interop vectors
// through the handler against examples/authzen-todo and compares the
// response bytes exactly, as the interop harness does.
func TestTodoConformance(t *testing.T) {
	file := filepath.Join(repoRoot(t), "..", "shared", "conformance", "authzen-todo-decisions.json")
	data, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		t.Skipf("conformance vectors not found at %s; they live in the shared/ directory beside the repository", file)
	}
	if err != nil {
		t.Fatal(err)
	}
	var v todoVectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("parse %s: %v", file, err)
	}
	if len(v.Evaluation) == 0 || len(v.Evaluations) == 0 {
		t.Fatalf("%s has no cases", file)
	}
	h := newTodoHandler(t, Options{})
	srv := httptest.NewServer(h)
	defer srv.Close()
	// send posts over loopback HTTP, as the interop harness does.
	send := func(t *testing.T, path string, body []byte) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "raw-shared-key")
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, string(b)
	}
	names := map[string]string{pidRick: "Rick", pidMorty: "Morty", pidSummer: "Summer", pidBeth: "Beth", pidJerry: "Jerry"}
	for i, c := range v.Evaluation {
		var r struct {
			Subject  struct{ ID string }
			Action   struct{ Name string }
			Resource struct{ Type, ID string }
		}
		_ = json.Unmarshal(c.Request, &r)
		name := fmt.Sprintf("evaluation %d: %s %s %s:%s is %v", i, names[r.Subject.ID], r.Action.Name, r.Resource.Type, r.Resource.ID, c.Expected)
		t.Run(name, func(t *testing.T) {
			status, body := send(t, PathEvaluation, c.Request)
			want := fmt.Sprintf(`{"decision":%v}`, c.Expected)
			if status != http.StatusOK || body != want {
				t.Fatalf("got %d %s, want 200 %s", status, body, want)
			}
		})
	}
	for i, c := range v.Evaluations {
		t.Run(fmt.Sprintf("evaluations %d returns exactly the expected array", i), func(t *testing.T) {
			var want bytes.Buffer
			want.WriteString(`{"evaluations":`)
			if err := json.Compact(&want, c.Expected); err != nil {
				t.Fatal(err)
			}
			want.WriteString(`}`)
			status, body := send(t, PathEvaluations, c.Request)
			if status != http.StatusOK || body != want.String() {
				t.Fatalf("got %d %s, want 200 %s", status, body, want.String())
			}
		})
	}
}
