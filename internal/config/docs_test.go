package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var yamlBlock = regexp.MustCompile("(?s)```yaml\n(# vigil\\.yaml\n.*?)```")

// TestDocumentedConfigs decodes and validates every configuration example
// in docs/ that is marked "# vigil.yaml", so that the docs stay true.
func TestDocumentedConfigs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme, _ := filepath.Glob(filepath.Join("..", "..", "README.md"))
	files = append(files, readme...)
	env := func(k string) (string, bool) { return "value-of-" + strings.ToLower(k) + "-0123456789", true }
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range yamlBlock.FindAllStringSubmatch(string(data), -1) {
			n++
			t.Run(filepath.Base(f)+" example "+string(rune('1'+i)), func(t *testing.T) {
				if _, err := Parse([]byte(m[1]), env); err != nil {
					t.Fatalf("%v\n---\n%s", err, m[1])
				}
			})
		}
	}
	if n == 0 {
		t.Fatal("no documented configuration found")
	}
}
