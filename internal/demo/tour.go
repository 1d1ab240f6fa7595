package demo

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Shell variables the tour defines and its commands use.
const (
	VarGateway  = "VIGIL"
	VarPDP      = "VIGIL_PDP"
	VarAdmin    = "VIGIL_ADMIN"
	VarDataDir  = "DEMO_DIR"
	VarAdminKey = "ADMIN_TOKEN"
)

// User is a demo user and the token minted for the tour.
type User struct {
	// Name is the subject ("sub") and the User entity id.
	Name string
	// Var is the shell variable that holds the token ("BOB").
	Var string
	// Roles go into the token's "roles" claim.
	Roles []string
	// ACR is the token's authentication context class.
	ACR string
	// CAE marks a client that declares the capability "cp1" (claim
	// xms_cc): revoked tokens get a CAE claims challenge.
	CAE bool
	// About describes the user in one line.
	About string
	// Token is the signed access token.
	Token string
}

// Step is one command of the tour and the answer it gets.
type Step struct {
	// Title says what the step shows.
	Title string
	// Method and Path form the request; Base names the shell variable of
	// the base URL (VarGateway, VarPDP or VarAdmin).
	Method, Base, Path string
	// Bearer names the shell variable of the bearer token ("" for none).
	Bearer string
	// Authorization is a literal Authorization header (used instead of
	// Bearer to show a bad token).
	Authorization string
	// JSON is an inline JSON body.
	JSON string
	// JSONFile is a JSON body read from a file under the data directory
	// (a path relative to it).
	JSONFile string
	// WebSocket adds the headers of a WebSocket handshake.
	WebSocket bool
	// Status is the status code the step answers.
	Status int
	// Stream marks a long-lived response: the command keeps running.
	Stream bool
	// Then is printed after the status, e.g. what to look for.
	Then string
}

// Tour is what the demo prints: addresses, tokens and steps.
type Tour struct {
	// Vars are the shell variables, in order (name → value).
	Vars []Var
	// Users are the demo users with their tokens.
	Users []User
	// Steps are the commands to try, in order: some depend on earlier
	// ones (a policy push changes later answers).
	Steps []Step
	// TokenTTL is the lifetime of the tokens.
	TokenTTL time.Duration
	// PolicyDir is where the active policy files were written.
	PolicyDir string
	// Issuer is the token issuer's URL.
	Issuer string
}

// Var is a shell variable of the tour.
type Var struct{ Name, Value string }

// Env returns the tour's shell variables, tokens included.
func (t *Tour) Env() map[string]string {
	env := make(map[string]string, len(t.Vars)+len(t.Users))
	for _, v := range t.Vars {
		env[v.Name] = v.Value
	}
	for _, u := range t.Users {
		env[u.Var] = u.Token
	}
	return env
}

// webSocketKey is the sample nonce of RFC 6455 §1.3; any 16-byte base64
// value works for a handshake.
const webSocketKey = "dGhlIHNhbXBsZSBub25jZQ=="

// Curl renders the step as a curl command line that uses the tour's shell
// variables.
func (s Step) Curl() string {
	parts := []string{"curl -i"}
	if s.Stream {
		parts[0] = "curl -iN"
	}
	if s.Method != http.MethodGet && !(s.Method == http.MethodPost && (s.JSON != "" || s.JSONFile != "")) {
		parts = append(parts, "-X "+s.Method)
	}
	parts = append(parts, `"$`+s.Base+s.Path+`"`)
	if s.Bearer != "" {
		parts = append(parts, `-H "Authorization: Bearer $`+s.Bearer+`"`)
	}
	if s.Authorization != "" {
		parts = append(parts, `-H 'Authorization: `+s.Authorization+`'`)
	}
	if s.WebSocket {
		parts = append(parts, "--http1.1", "-H 'Connection: Upgrade'", "-H 'Upgrade: websocket'",
			"-H 'Sec-WebSocket-Version: 13'", "-H 'Sec-WebSocket-Key: "+webSocketKey+"'")
	}
	switch {
	case s.JSON != "":
		parts = append(parts, "-H 'Content-Type: application/json'", "-d "+shellQuote(s.JSON))
	case s.JSONFile != "":
		parts = append(parts, "-H 'Content-Type: application/json'", `--data-binary @"$`+VarDataDir+"/"+s.JSONFile+`"`)
	}
	// Keep lines short enough to read: wrap after the URL and the token.
	var b strings.Builder
	line := 0
	for i, p := range parts {
		if i > 0 {
			if line+len(p) > 76 {
				b.WriteString(" \\\n    ")
				line = 4
			} else {
				b.WriteByte(' ')
				line++
			}
		}
		b.WriteString(p)
		line += len(p)
	}
	return b.String()
}

// StreamMarker ends the comment of a long-lived command.
const StreamMarker = " (it keeps running; Ctrl-C ends it)"

// Expect is the one-line summary of the answer.
func (s Step) Expect() string {
	e := fmt.Sprintf("%d %s", s.Status, http.StatusText(s.Status))
	if s.Then != "" {
		e += ", " + s.Then
	}
	if s.Stream {
		e += StreamMarker
	}
	return e
}

// NewRequest builds the step's request with the tour's variables, for
// running the tour without a shell.
func (s Step) NewRequest(ctx context.Context, env map[string]string) (*http.Request, error) {
	base, ok := env[s.Base]
	if !ok {
		return nil, fmt.Errorf("step %q: variable %s is not set", s.Title, s.Base)
	}
	var body io.Reader
	switch {
	case s.JSON != "":
		body = strings.NewReader(s.JSON)
	case s.JSONFile != "":
		f, err := os.Open(filepath.Join(env[VarDataDir], filepath.FromSlash(s.JSONFile)))
		if err != nil {
			return nil, fmt.Errorf("step %q: %w", s.Title, err)
		}
		defer f.Close()
		data, err := io.ReadAll(io.LimitReader(f, 16<<20))
		if err != nil {
			return nil, fmt.Errorf("step %q: read %s: %w", s.Title, s.JSONFile, err)
		}
		body = strings.NewReader(string(data))
	}
	req, err := http.NewRequestWithContext(ctx, s.Method, base+s.Path, body)
	if err != nil {
		return nil, fmt.Errorf("step %q: %w", s.Title, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.Bearer != "" {
		tok, ok := env[s.Bearer]
		if !ok {
			return nil, fmt.Errorf("step %q: variable %s is not set", s.Title, s.Bearer)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if s.Authorization != "" {
		req.Header.Set("Authorization", s.Authorization)
	}
	if s.WebSocket {
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", webSocketKey)
	}
	return req, nil
}

// Write prints the tour.
func (t *Tour) Write(w io.Writer) error {
	env := t.Env()
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("\nVigil demo: everything below runs in this process, on loopback. Ctrl-C stops it.\n\n")
	p("  gateway    %-24s the sample documents API, behind Vigil\n", env[VarGateway])
	p("  AuthZEN    %-24s decisions for other enforcement points\n", env[VarPDP])
	p("  admin API  %-24s policies and entities (bearer $%s)\n", env[VarAdmin], VarAdminKey)
	p("  issuer     %-24s OpenID discovery and JWKS of the demo tokens\n", t.Issuer)
	p("  policies   %s\n", t.PolicyDir)
	p("\n1) Paste this into another shell (the tokens are valid for %s):\n\n", humanDuration(t.TokenTTL))
	for _, v := range t.Vars {
		p("export %s=%s\n", v.Name, shellQuote(v.Value))
	}
	for _, u := range t.Users {
		p("export %s=%s\n", u.Var, shellQuote(u.Token))
	}
	p("\n   Users: ")
	for i, u := range t.Users {
		if i > 0 {
			p("\n          ")
		}
		p("$%-6s %s", u.Var, u.About)
	}
	p("\n\n2) Try these, in order; each comment says the answer you get:\n")
	for _, s := range t.Steps {
		p("\n# %s → %s\n%s\n", s.Title, s.Expect(), s.Curl())
	}
	p("\nThe gateway logs every denial with the policies that decided it (stderr).\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	safe := s != ""
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./:@=", c)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// humanDuration prints whole hours and minutes without trailing zero units
// ("8h", "90m"), anything else as time.Duration does.
func humanDuration(d time.Duration) string {
	switch {
	case d > 0 && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d > 0 && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}
