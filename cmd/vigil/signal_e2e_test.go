package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSignalCLI drives a real `vigil serve` with the signal and state
// commands and checks that the next AuthZEN decision changes.
func TestSignalCLI(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.cedar"), []byte(`@id("all") permit(principal, action, resource) unless { context.risk.level == "HIGH" };`), 0o644)
	in := startVigil(t, true, "--policies", dir)
	admin := []string{"--admin", in.AdminURL(""), "--data-dir", in.DataDir}
	decide := func(subject string) string {
		_, _, body := postJSON(t, in.URL("/access/v1/evaluation"),
			`{"subject":{"type":"User","id":"`+subject+`"},"action":{"name":"read"},"resource":{"type":"Doc","id":"1"}}`, nil)
		return strings.TrimSpace(string(body))
	}
	run := func(args ...string) string {
		t.Helper()
		out, errOut, code := runVigil(t, append(args, admin...)...)
		if code != 0 {
			t.Fatalf("vigil %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}

	if got := decide("alice"); got != `{"decision":true}` {
		t.Fatalf("before: %s", got)
	}
	out := run("signal", "revoke-session", "--subject", "alice", "--reason", "stolen laptop")
	if !strings.Contains(out, "session-revoked recorded") {
		t.Fatal(out)
	}
	if got := decide("alice"); got != `{"decision":false}` {
		t.Fatalf("after revocation: %s", got)
	}
	run("signal", "risk", "--subject", "bob", "--level", "high", "--reason", "impossible travel")
	if got := decide("bob"); got != `{"decision":false}` {
		t.Fatalf("after risk: %s", got)
	}
	if out := run("state", "show", "bob"); !strings.Contains(out, `"level": "HIGH"`) || !strings.Contains(out, "impossible travel") {
		t.Fatal(out)
	}
	if out := run("signal", "list"); !strings.Contains(out, "risk-level-change") || !strings.Contains(out, "session-revoked") {
		t.Fatal(out)
	}
	t.Run("a wrong token is refused", func(t *testing.T) {
		_, errOut, code := runVigil(t, "signal", "disable", "--subject", "x", "--admin", in.AdminURL(""), "--token", "wrong-token-wrong-token")
		if code == 0 || !strings.Contains(errOut, "401") {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
	t.Run("a signal without a subject is refused locally", func(t *testing.T) {
		_, errOut, code := runVigil(t, append([]string{"signal", "disable"}, admin...)...)
		if code == 0 || !strings.Contains(errOut, "name the subject") {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
}
