package policytest_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vigil-authz/vigil/internal/policytest"
)

// The examples in docs/policies.md are executed so that they stay true:
// every YAML test file in it runs green against the quickstart, and every
// JSON request document parses and decides as the text says.
func TestDocsExamplesRun(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "policies.md"))
	if err != nil {
		t.Fatal(err)
	}
	snap := compile(t, filepath.Join("..", "..", "examples", "quickstart"))
	blocks := regexp.MustCompile("(?s)```(yaml|json)\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	var yamlRuns, jsonRuns int
	for i, b := range blocks {
		lang, body := b[1], b[2]
		switch {
		case lang == "yaml" && strings.Contains(body, "cases:"):
			yamlRuns++
			s, err := policytest.Parse("policies.md", []byte(body))
			if err != nil {
				t.Fatalf("YAML block %d does not parse: %v", i, err)
			}
			var rep policytest.Report
			rep.Add(policytest.NewRunner(snap).RunSuite(s, policytest.Options{}))
			if !rep.OK() {
				var out strings.Builder
				_ = rep.WriteText(&out, false)
				t.Errorf("YAML block %d fails against the quickstart:\n%s", i, out.String())
			}
		case lang == "json" && strings.Contains(body, `"principal_parents"`):
			jsonRuns++
			r, err := policytest.ParseRequestJSON("policies.md", []byte(body))
			if err != nil {
				t.Fatalf("JSON block %d does not parse: %v", i, err)
			}
			if res := policytest.Eval(snap, r); !res.Allow {
				t.Errorf("JSON block %d: want allow, got %+v", i, res)
			}
		}
	}
	if yamlRuns == 0 || jsonRuns == 0 {
		t.Fatalf("found %d YAML test files and %d JSON requests in the docs; the extraction is broken", yamlRuns, jsonRuns)
	}
}
