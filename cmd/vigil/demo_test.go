package main

// `vigil demo` end to end: run the real binary, read the tour it prints and
// paste every printed command into a shell, as a user would, checking that
// each answers the status its comment promises.

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-authz/vigil/internal/demo"
)

// printedStep is one command of the printed tour.
type printedStep struct {
	title  string
	status int
	stream bool
	cmd    string
}

var stepComment = regexp.MustCompile(`^# (.*) → (\d{3}) `)

// parseTour reads the exports and the commented commands of the tour.
func parseTour(t *testing.T, out string) (exports []string, steps []printedStep) {
	t.Helper()
	var cur *printedStep
	for line := range strings.SplitSeq(out, "\n") {
		switch {
		case strings.HasPrefix(line, "export "):
			exports = append(exports, line)
		case strings.HasPrefix(line, "# "):
			m := stepComment.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("a tour comment does not say the status it gets: %q", line)
			}
			code, _ := strconv.Atoi(m[2])
			steps = append(steps, printedStep{title: m[1], status: code,
				stream: strings.HasSuffix(line, demo.StreamMarker)})
			cur = &steps[len(steps)-1]
		case cur != nil && strings.TrimSpace(line) != "":
			cur.cmd += strings.TrimSuffix(strings.TrimSpace(line), `\`) + " "
		case cur != nil:
			cur = nil
		}
	}
	return exports, steps
}

func TestDemoPrintedCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the vigil binary")
	}
	for _, tool := range []string{"curl", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: install it (apt-get install -y %s) to run the printed demo commands", tool, tool)
		}
	}
	bin := vigilBinary(t)
	// Three loopback addresses so that every listener gets an ephemeral
	// port of its own (the listeners' addresses must differ).
	cmd := exec.Command(bin, "demo", "--addr", "127.0.0.1:0", "--pdp-addr", "127.0.0.2:0", "--admin-addr", "127.0.0.3:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			logs.mu.Lock()
			t.Logf("vigil demo logs:\n%s", logs.String())
			logs.mu.Unlock()
		}
	})

	// Read the tour up to its last line.
	tourc := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "The gateway logs every denial") {
				break
			}
		}
		tourc <- b.String()
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var out string
	select {
	case out = <-tourc:
	case err := <-done:
		stopped = true
		t.Fatalf("vigil demo exited before printing the tour: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("vigil demo printed no tour within 60s")
	}

	exports, steps := parseTour(t, out)
	if len(exports) < 5 || len(steps) < 10 {
		t.Fatalf("tour has %d exports and %d steps; output:\n%s", len(exports), len(steps), out)
	}
	prelude := strings.Join(exports, "\n") + "\n"
	var dataDir string
	for _, e := range exports {
		if v, ok := strings.CutPrefix(e, "export DEMO_DIR="); ok {
			dataDir = strings.Trim(v, "'")
		}
	}
	for i, s := range steps {
		t.Run(s.title, func(t *testing.T) {
			// Long-lived commands are stopped after a moment; curl then
			// exits 28 (timeout) but still reports the status.
			limit := "10"
			if s.stream {
				limit = "1"
			}
			script := prelude + s.cmd + `-s -o /dev/null -w '%{http_code}' --max-time ` + limit
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c := exec.CommandContext(ctx, "bash", "-c", script)
			got, err := c.Output()
			var ee *exec.ExitError
			if err != nil && !(s.stream && errors.As(err, &ee) && ee.ExitCode() == 28) {
				t.Fatalf("step %d failed: %v\n%s", i+1, err, s.cmd)
			}
			if code := strings.TrimSpace(string(got)); code != strconv.Itoa(s.status) {
				t.Fatalf("step %d answered %s, the tour promises %d:\n%s", i+1, code, s.status, s.cmd)
			}
		})
	}

	// Ctrl-C stops the demo cleanly and removes its temporary data.
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Fatalf("vigil demo exited with %v after Ctrl-C", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("vigil demo did not stop within 20s of Ctrl-C")
	}
	if _, err := os.Stat(dataDir); dataDir == "" || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary data directory %q still exists after exit (%v)", dataDir, err)
	}
}
