package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runVigil runs the built binary and returns stdout, stderr and the exit code.
func runVigil(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(vigilBinary(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func TestCLI(t *testing.T) {
	quickstart := filepath.Join(repoRoot(), "examples", "quickstart")
	broken := t.TempDir()
	os.WriteFile(filepath.Join(broken, "a.cedar"), []byte("permit(principal,\n  action resource);"), 0o644)
	os.WriteFile(filepath.Join(broken, "b.cedar"), []byte(`@id("x") permit(principal, action, resource);`+"\n"+`@id("x") forbid(principal, action, resource);`), 0o644)

	cases := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"version prints the version", []string{"version"}, 0, "vigil ", ""},
		{"validate accepts the quickstart", []string{"validate", quickstart}, 0, "ok — ", ""},
		{"validate reports every problem with file and line", []string{"validate", broken}, 1, "", "a.cedar:2:"},
		{"validate reports duplicate IDs", []string{"validate", broken}, 1, "", "duplicate policy ID"},
		{"validate refuses a missing directory", []string{"validate", filepath.Join(broken, "nope")}, 1, "", "no such file"},
		{"test runs the quickstart suite green", []string{"test", quickstart}, 0, " passed, 0 failed", ""},
		{"test exits 2 when the policies do not compile", []string{"test", broken}, 2, "", "problem(s)"},
		{"eval prints an allow", []string{"eval", quickstart, "--principal", `User::"alice"`, "--action", `Action::"GET /documents/{id}"`, "--resource", `Document::"roadmap"`,
			"--context", `{"request":{"method":"GET","path":"/documents/roadmap","host":"h","ip":{"__extn":{"fn":"ip","arg":"127.0.0.1"}},"time":1767225600},"device":{"compliant":true,"managed":true},"risk":{"score":0,"level":"low","reasons":[]}}`}, 0, "ALLOW", ""},
		{"eval exits 3 on deny", []string{"eval", quickstart, "--principal", `User::"nobody"`, "--action", "read", "--resource", `Document::"roadmap"`}, 3, "DENY", ""},
		{"eval rejects bad UIDs", []string{"eval", quickstart, "--principal", `User:alice`, "--action", "read", "--resource", `Document::"x"`}, 2, "", "--principal"},
		{"unknown commands fail", []string{"frobnicate"}, 1, "", "unknown command"},
		{"serve refuses a bad config file", []string{"serve", "--config", filepath.Join(broken, "nope.yaml")}, 1, "", "read config"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runVigil(t, tc.args...)
			if code != tc.wantCode || !strings.Contains(out, tc.wantOut) || !strings.Contains(errOut, tc.wantErr) {
				t.Fatalf("vigil %s\nexit %d (want %d)\nstdout: %s\nstderr: %s", strings.Join(tc.args, " "), code, tc.wantCode, out, errOut)
			}
		})
	}
}
