package policytest_test

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vigil-authz/vigil/internal/policy"
	"github.com/vigil-authz/vigil/internal/policytest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// compile loads and compiles a policy directory.
func compile(t testing.TB, dir string) *policy.Snapshot {
	t.Helper()
	b, err := policy.LoadDir(dir)
	if err != nil {
		t.Fatalf("load %s: %v", dir, err)
	}
	snap, err := policy.Compile(b)
	if err != nil {
		t.Fatalf("compile %s: %v", dir, err)
	}
	return snap
}

// golden compares got with testdata/golden/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run go test -update if the change is intended)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestRunPassesAGreenFile(t *testing.T) {
	snap := compile(t, "testdata/todo")
	files, err := policytest.Discover("testdata/todo")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := policytest.Run(snap, files, policytest.Options{})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var out bytes.Buffer
	if err := rep.WriteText(&out, false); err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.ExitCode() != 0 {
		t.Fatalf("want every case to pass, got:\n%s", out.String())
	}
	if rep.Passed != 14 || rep.Skipped != 1 {
		t.Errorf("got %s, want 14 passed, 0 failed, 1 skipped", rep.Summary())
	}
	if got, want := out.String(), "14 passed, 0 failed, 1 skipped\n"; got != want {
		t.Errorf("quiet output of a green run = %q, want only the summary %q", got, want)
	}
	var verbose bytes.Buffer
	if err := rep.WriteText(&verbose, true); err != nil {
		t.Fatal(err)
	}
	golden(t, "todo_verbose.txt", verbose.Bytes())
}

func TestRunExplainsFailures(t *testing.T) {
	snap := compile(t, "testdata/todo")
	rep, err := policytest.Run(snap, []string{"testdata/failing/failing_test.yaml"}, policytest.Options{})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.OK() || rep.ExitCode() != 1 {
		t.Fatalf("want failures, got %s", rep.Summary())
	}
	var out bytes.Buffer
	if err := rep.WriteText(&out, false); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"--- FAIL: wrong decision (testdata/failing/failing_test.yaml:9)\n    got deny, want allow\n",
		"determining policies: got [blocked-users], want [owner-writes]",
		"got 1 evaluation error(s), want none",
		"got no evaluation errors, want some",
		"evaluation error in blocked-users: entity `User::\"ghost\"` does not exist",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if last := lines[len(lines)-1]; last != "1 passed, 4 failed, 1 skipped" {
		t.Errorf("last line = %q, want the summary alone", last)
	}
	if strings.Contains(text, "PASS") {
		t.Errorf("quiet output lists passing cases:\n%s", text)
	}
	golden(t, "failing.txt", out.Bytes())

	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	golden(t, "failing.json", js.Bytes())
}

func TestRunFilterSelectsCases(t *testing.T) {
	snap := compile(t, "testdata/todo")
	tests := []struct {
		name, filter string
		want         int
	}{
		{"a case name pattern selects matching cases", "overlay", 3},
		{"a suite/case pattern selects within a suite", "^todo permissions/deletes", 2},
		{"a pattern that matches nothing runs nothing", "no such case", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := policytest.Run(snap, []string{"testdata/todo/todo_test.yaml"}, policytest.Options{Filter: regexp.MustCompile(tt.filter)})
			if err != nil {
				t.Fatal(err)
			}
			if got := rep.Passed + rep.Failed + rep.Skipped; got != tt.want {
				t.Errorf("ran %d cases, want %d", got, tt.want)
			}
		})
	}
}

func TestRunRejectsBrokenFilesBeforeRunning(t *testing.T) {
	snap := compile(t, "testdata/todo")
	_, err := policytest.Run(snap, []string{
		"testdata/todo/todo_test.yaml",
		"testdata/parse/unknown_key_test.yaml",
		"testdata/parse/no_such_file_test.yaml",
	}, policytest.Options{})
	var le *policytest.LoadError
	if !errors.As(err, &le) {
		t.Fatalf("want a *LoadError, got %v", err)
	}
	if len(le.Problems) != 2 {
		t.Fatalf("want one problem per broken file, got %v", err)
	}
	if got := le.Problems[0].String(); !strings.HasPrefix(got, `testdata/parse/unknown_key_test.yaml:6:5: unknown field "expct"`) {
		t.Errorf("first problem = %q", got)
	}
	if got := le.Problems[1].String(); !strings.Contains(got, "no_such_file_test.yaml") {
		t.Errorf("second problem = %q, want it to name the missing file", got)
	}
}

func TestDiscoverFindsTestFiles(t *testing.T) {
	tests := []struct {
		name    string
		paths   []string
		want    []string
		wantErr error
	}{
		{"a directory contributes its test files", []string{"testdata/todo"}, []string{"testdata/todo/todo_test.yaml"}, nil},
		{"a file is taken as given", []string{"testdata/parse/unknown_key_test.yaml"}, []string{"testdata/parse/unknown_key_test.yaml"}, nil},
		{"duplicates are dropped", []string{"testdata/todo", "testdata/todo/todo_test.yaml"}, []string{"testdata/todo/todo_test.yaml"}, nil},
		{"a directory without test files is an error", []string{"testdata/golden"}, nil, policytest.ErrNoTestFiles},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := policytest.Discover(tt.paths...)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	if _, err := policytest.Discover("testdata/does-not-exist"); err == nil {
		t.Error("a missing path should be an error")
	}
}

func TestIsTestFile(t *testing.T) {
	for name, want := range map[string]bool{
		"todo_test.yaml": true, "todo.test.yaml": true, "a_test.yml": true, "a.test.yml": true,
		"_test.yaml": false, "todo.yaml": false, "quickstart.cedar": false, "test.yaml": false,
	} {
		if got := policytest.IsTestFile(name); got != want {
			t.Errorf("IsTestFile(%q) = %v, want %v", name, got, want)
		}
	}
}

// The quickstart example is what newcomers copy; its tests must stay green.
func TestQuickstartExamplePasses(t *testing.T) {
	dir := filepath.Join("..", "..", "examples", "quickstart")
	snap := compile(t, dir)
	if snap.Schema == nil {
		t.Fatal("the quickstart has a schema; it was not loaded")
	}
	files, err := policytest.Discover(dir)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := policytest.Run(snap, files, policytest.Options{})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var out bytes.Buffer
	_ = rep.WriteText(&out, true)
	if !rep.OK() || rep.Passed == 0 || rep.Skipped != 0 {
		t.Fatalf("quickstart tests are not all green:\n%s", out.String())
	}
	t.Log(rep.Summary())
}
