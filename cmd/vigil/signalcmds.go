package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// adminClient talks to a running Vigil's admin API.
type adminClient struct {
	base, token string
	http        *http.Client
}

// adminFlags are shared by the commands that call the admin API.
type adminFlags struct {
	addr, token, dataDir string
}

func (f *adminFlags) register(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.addr, "admin", envOr("VIGIL_ADMIN", "http://127.0.0.1:8081"), "admin API base URL (env VIGIL_ADMIN)")
	pf.StringVar(&f.token, "token", "", "admin API key (env VIGIL_ADMIN_TOKEN; default: read <data-dir>/admin.token)")
	pf.StringVar(&f.dataDir, "data-dir", "./vigil-data", "data directory of the local Vigil, to read admin.token from")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func (f *adminFlags) client() (*adminClient, error) {
	tok := f.token
	if tok == "" {
		tok = os.Getenv("VIGIL_ADMIN_TOKEN")
	}
	if tok == "" {
		data, err := os.ReadFile(filepath.Join(f.dataDir, "admin.token"))
		if err != nil {
			return nil, fmt.Errorf("no admin token: pass --token, set VIGIL_ADMIN_TOKEN, or point --data-dir at the server's data directory (%v)", err)
		}
		tok = strings.TrimSpace(string(data))
	}
	base := strings.TrimRight(f.addr, "/")
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		base = "http://" + base
	}
	return &adminClient{base: base, token: tok, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// do sends a request and decodes a JSON answer into out; a non-2xx answer
// becomes an error carrying the server's problem detail.
func (c *adminClient) do(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("call the admin API at %s: %w (is `vigil serve` running?)", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var p struct {
			Detail string `json:"detail"`
			Error  string `json:"error"`
		}
		_ = json.Unmarshal(data, &p)
		msg := p.Detail
		if msg == "" {
			msg = p.Error
		}
		if msg == "" {
			msg = strings.TrimSpace(string(data))
		}
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, msg)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// subjectFlags name who a signal is about.
type subjectFlags struct {
	subject, issuer, email, session, device, jti string
}

func (s *subjectFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&s.subject, "subject", "", "the user's subject (token sub); with --issuer an iss_sub identifier, else opaque")
	f.StringVar(&s.issuer, "issuer", "", "the token issuer of --subject or --jti")
	f.StringVar(&s.email, "email", "", "the user's email")
	f.StringVar(&s.session, "session", "", "a session id (token sid)")
	f.StringVar(&s.device, "device", "", "a device id")
	f.StringVar(&s.jti, "jti", "", "one token's jti (with --issuer)")
}

func opaque(id string) map[string]any { return map[string]any{"format": "opaque", "id": id} }

// build returns an RFC 9493 / SSF subject identifier. Several flags make a
// complex subject: every member must match.
func (s *subjectFlags) build() (map[string]any, error) {
	var user map[string]any
	switch {
	case s.subject != "" && s.issuer != "":
		user = map[string]any{"format": "iss_sub", "iss": s.issuer, "sub": s.subject}
	case s.subject != "":
		user = opaque(s.subject)
	case s.email != "":
		user = map[string]any{"format": "email", "email": s.email}
	}
	members := map[string]any{}
	if user != nil {
		members["user"] = user
	}
	if s.session != "" {
		members["session"] = opaque(s.session)
	}
	if s.device != "" {
		members["device"] = opaque(s.device)
	}
	if s.jti != "" {
		if s.issuer == "" {
			return nil, fmt.Errorf("--jti needs --issuer")
		}
		return map[string]any{"format": "jwt_id", "iss": s.issuer, "jti": s.jti}, nil
	}
	switch len(members) {
	case 0:
		return nil, fmt.Errorf("name the subject: --subject (with --issuer), --email, --session, --device or --jti")
	case 1:
		if user != nil {
			return user, nil
		}
	}
	members["format"] = "complex"
	return members, nil
}

func newSignalCmd() *cobra.Command {
	var af adminFlags
	cmd := &cobra.Command{
		Use:   "signal",
		Short: "Record security signals in a running Vigil (revoke, disable, risk, ...)",
		Long: `Record a signal through the admin API. The command returns once the signal is in
force on that node: every decision that starts afterwards reflects it.

  vigil signal revoke-session --subject alice --reason "stolen laptop"
  vigil signal risk --subject alice --level HIGH --reason "impossible travel"
  vigil signal disable --email bob@example.com
  vigil signal device --device laptop-7 --compliant=false
  vigil signal list`,
	}
	af.register(cmd)

	simple := func(use, short, kind string, extra func(*cobra.Command, map[string]any) func() error) *cobra.Command {
		var sf subjectFlags
		var reason string
		c := &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs}
		sf.register(c)
		c.Flags().StringVar(&reason, "reason", "", "why (kept in the journal and shown in decision logs)")
		body := map[string]any{"kind": kind}
		var check func() error
		if extra != nil {
			check = extra(c, body)
		}
		c.RunE = func(cmd *cobra.Command, _ []string) error {
			subj, err := sf.build()
			if err != nil {
				return err
			}
			if reason != "" {
				body["reason"] = reason
			}
			if check != nil {
				if err := check(); err != nil {
					return err
				}
			}
			body["subject"] = subj
			cl, err := af.client()
			if err != nil {
				return err
			}
			var out struct {
				ID   string `json:"id"`
				Kind string `json:"kind"`
				Seq  uint64 `json:"seq"`
			}
			if err := cl.do("POST", "/admin/v1/signals", body, &out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s recorded (id %s, seq %d): in force for every decision from now on\n", out.Kind, out.ID, out.Seq)
			return nil
		}
		return c
	}

	cmd.AddCommand(
		simple("revoke-session", "Reject the subject's tokens issued before now (CAEP session-revoked)", "session-revoked", nil),
		simple("revoke-credentials", "Reject tokens issued before now after a credential compromise (RISC credential-compromise)", "credential-compromise",
			func(c *cobra.Command, body map[string]any) func() error {
				var ct string
				c.Flags().StringVar(&ct, "credential-type", "password", "credential type (password, pin, x509, fido2-platform, ...)")
				return func() error { body["credential_type"] = ct; return nil }
			}),
		simple("disable", "Deny all access until enabled again (RISC account-disabled)", "account-disabled", nil),
		simple("enable", "Lift a disable (RISC account-enabled)", "account-enabled", nil),
		simple("purge", "Deny all access for good (RISC account-purged)", "account-purged", nil),
		simple("risk", "Set the subject's risk level (CAEP risk-level-change)", "risk-level-change",
			func(c *cobra.Command, body map[string]any) func() error {
				var level, principal string
				var score int
				var reasons []string
				c.Flags().StringVar(&level, "level", "", "LOW, MEDIUM or HIGH (required)")
				c.Flags().IntVar(&score, "score", -1, "score 0-100 (default from the level)")
				c.Flags().StringSliceVar(&reasons, "risk-reason", nil, "reasons shown to policies as context.risk.reasons")
				c.Flags().StringVar(&principal, "principal", "USER", "what the risk is about: USER, SESSION, DEVICE, TENANT")
				return func() error {
					level = strings.ToUpper(level)
					if level != "LOW" && level != "MEDIUM" && level != "HIGH" {
						return fmt.Errorf("--level must be LOW, MEDIUM or HIGH")
					}
					risk := map[string]any{"level": level, "principal": principal}
					if score >= 0 {
						risk["score"] = score
					}
					if len(reasons) == 0 {
						if r, ok := body["reason"].(string); ok {
							reasons = []string{r}
						}
					}
					if len(reasons) > 0 {
						risk["reasons"] = reasons
					}
					body["risk"] = risk
					return nil
				}
			}),
		simple("device", "Record a device's compliance (CAEP device-compliance-change)", "device-compliance-change",
			func(c *cobra.Command, body map[string]any) func() error {
				var compliant bool
				c.Flags().BoolVar(&compliant, "compliant", false, "whether the device is compliant")
				return func() error { body["compliant"] = compliant; return nil }
			}),
		simple("assurance", "Record the session's assurance level (CAEP assurance-level-change)", "assurance-level-change",
			func(c *cobra.Command, body map[string]any) func() error {
				var ns, level string
				c.Flags().StringVar(&ns, "namespace", "NIST-AAL", "level namespace (RFC8176, NIST-AAL, ...)")
				c.Flags().StringVar(&level, "level", "", "the current level (required)")
				return func() error {
					if level == "" {
						return fmt.Errorf("--level is required")
					}
					body["namespace"], body["current_level"] = ns, level
					return nil
				}
			}),
		newSignalListCmd(&af),
	)
	return cmd
}

func newSignalListCmd(af *adminFlags) *cobra.Command {
	var limit int
	var asJSON bool
	c := &cobra.Command{
		Use:   "list",
		Short: "List the newest signals in the journal",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := af.client()
			if err != nil {
				return err
			}
			var out struct {
				Signals []struct {
					Seq    uint64         `json:"seq"`
					Signal map[string]any `json:"signal"`
				} `json:"signals"`
			}
			if err := cl.do("GET", fmt.Sprintf("/admin/v1/signals?limit=%d", limit), nil, &out); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(out.Signals)
			}
			if len(out.Signals) == 0 {
				fmt.Fprintln(w, "no signals in the journal")
				return nil
			}
			fmt.Fprintf(w, "%-6s  %-20s  %-26s  %-12s  %s\n", "SEQ", "RECEIVED", "KIND", "SOURCE", "SUBJECT / REASON")
			for _, r := range out.Signals {
				s := r.Signal
				subj, _ := json.Marshal(s["subject"])
				recv, _ := s["received"].(string)
				if t, err := time.Parse(time.RFC3339Nano, recv); err == nil {
					recv = t.UTC().Format("2006-01-02 15:04:05")
				}
				line := string(subj)
				if reason, _ := s["reason"].(string); reason != "" {
					line += "  " + reason
				}
				fmt.Fprintf(w, "%-6d  %-20s  %-26v  %-12v  %s\n", r.Seq, recv, s["kind"], s["source"], line)
			}
			return nil
		},
	}
	c.Flags().IntVar(&limit, "limit", 20, "how many signals (newest first)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newStateCmd() *cobra.Command {
	var af adminFlags
	cmd := &cobra.Command{Use: "state", Short: "Inspect live state in a running Vigil"}
	af.register(cmd)
	var q struct{ issuer, email, session, device, jti, iat string }
	show := &cobra.Command{
		Use:   "show [SUBJECT]",
		Short: "Show the live facts (revocation, account, device, assurance, risk) and the risk engine's contributions for a subject",
		Long: `Show what live state says about a subject (token sub), and what the guards decide
for a token issued at --iat (default: a token of unknown age).

  vigil state show alice
  vigil state show alice --issuer https://idp.example.com --iat 1767225600
  vigil state show --session s-123`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v := url.Values{}
			if len(args) == 1 {
				v.Set("sub", args[0])
			}
			for k, val := range map[string]string{"iss": q.issuer, "email": q.email, "sid": q.session, "device": q.device, "jti": q.jti, "iat": q.iat} {
				if val != "" {
					v.Set(k, val)
				}
			}
			cl, err := af.client()
			if err != nil {
				return err
			}
			var out map[string]any
			if err := cl.do("GET", "/admin/v1/state?"+v.Encode(), nil, &out); err != nil {
				return err
			}
			// The risk engine (when the gateway runs it) explains the score:
			// each detector's contribution and reason.
			if v.Get("sub") != "" || v.Get("sid") != "" {
				rq := url.Values{}
				for _, k := range []string{"sub", "iss", "sid"} {
					if v.Get(k) != "" {
						rq.Set(k, v.Get(k))
					}
				}
				var riskOut map[string]any
				if err := cl.do("GET", "/admin/v1/risk?"+rq.Encode(), nil, &riskOut); err == nil {
					out["risk_engine"] = riskOut
				}
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(out)
		},
	}
	f := show.Flags()
	f.StringVar(&q.issuer, "issuer", "", "token issuer (iss)")
	f.StringVar(&q.email, "email", "", "email")
	f.StringVar(&q.session, "session", "", "session id (sid)")
	f.StringVar(&q.device, "device", "", "device id")
	f.StringVar(&q.jti, "jti", "", "token id (with --issuer)")
	f.StringVar(&q.iat, "iat", "", "token issue time, Unix seconds")
	cmd.AddCommand(show)
	return cmd
}
