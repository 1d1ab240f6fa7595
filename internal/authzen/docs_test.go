package authzen

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// curlExample matches the curl commands of the documentation: the path,
// the JSON body and, when the next line is a "# ..." comment, the exact
// response.
var curlExample = regexp.MustCompile(`(?s)curl -s localhost:8080(/\S+) -H 'Content-Type: application/json' -d '(.*?)'\n(?:# (\S[^\n]*))?`)

// TestDocumentedExamples runs every curl example of the AuthZEN docs and
// the Todo example's README against the Todo policy set, so the docs stay
// true.
func TestDocumentedExamples(t *testing.T) {
	root := repoRoot(t)
	docs := []string{
		filepath.Join(root, "examples", "authzen-todo", "README.md"),
		filepath.Join(root, "docs", "authzen.md"),
		filepath.Join(root, "internal", "authzen", "MAPPING.md"),
	}
	h := newTodoHandler(t, Options{})
	ran := 0
	for _, doc := range docs {
		data, err := os.ReadFile(doc)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range curlExample.FindAllStringSubmatch(string(data), -1) {
			path, body, want := m[1], m[2], strings.TrimSpace(m[3])
			t.Run(filepath.Base(doc)+" example "+strconv.Itoa(i+1)+" answers as documented", func(t *testing.T) {
				rec := post(h, path, body)
				if rec.Code != 200 {
					t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
				}
				if want != "" && rec.Body.String() != want {
					t.Fatalf("%s: got %s, documented %s", path, rec.Body, want)
				}
			})
			ran++
		}
	}
	if ran == 0 {
		t.Fatal("no documented examples found")
	}
}
