package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"

	"github.com/spf13/cobra"

	"github.com/vigil-authz/vigil/internal/policy"
	"github.com/vigil-authz/vigil/internal/policytest"
)

// compileDir loads and compiles a policy directory, printing its problems.
func compileDir(w io.Writer, dir string) (*policy.Snapshot, error) {
	b, err := policy.LoadDir(dir)
	if err != nil {
		return nil, &exitError{code: 2, msg: err.Error()}
	}
	snap, err := policy.Compile(b)
	if err != nil {
		var ce *policy.CompileError
		if errors.As(err, &ce) {
			for _, p := range ce.Problems {
				fmt.Fprintln(w, p.String())
			}
			return nil, &exitError{code: 2, msg: fmt.Sprintf("%s: %d problem(s) in the policy set", dir, len(ce.Problems))}
		}
		return nil, &exitError{code: 2, msg: err.Error()}
	}
	return snap, nil
}

func newTestCmd() *cobra.Command {
	var verbose bool
	var run, format string
	cmd := &cobra.Command{
		Use:   "test DIR [PATH...]",
		Short: "Run policy tests (*_test.yaml) against a policy directory",
		Long: `Run YAML policy tests: each case is a request and the decision it must get.

  vigil test examples/quickstart
  vigil test examples/quickstart -v --run 'editors'

Test files are *_test.yaml / *.test.yaml in DIR, or the given paths. Exit status:
0 all passed, 1 a case failed, 2 the policies or a test file could not be loaded.
See docs/policies.md for the file format.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, errw := cmd.OutOrStdout(), cmd.ErrOrStderr()
			snap, err := compileDir(errw, args[0])
			if err != nil {
				return err
			}
			paths := args[1:]
			if len(paths) == 0 {
				paths = args[:1]
			}
			files, err := policytest.Discover(paths...)
			if err != nil {
				return &exitError{code: 2, msg: err.Error()}
			}
			var opts policytest.Options
			if run != "" {
				re, err := regexp.Compile(run)
				if err != nil {
					return &exitError{code: 2, msg: fmt.Sprintf("--run: %v", err)}
				}
				opts.Filter = re
			}
			rep, err := policytest.Run(snap, files, opts)
			if err != nil {
				var le *policytest.LoadError
				if errors.As(err, &le) {
					for _, p := range le.Problems {
						fmt.Fprintln(errw, p.String())
					}
				}
				return &exitError{code: 2, msg: err.Error()}
			}
			switch format {
			case "json":
				err = rep.WriteJSON(out)
			case "text", "":
				err = rep.WriteText(out, verbose)
			default:
				return &exitError{code: 2, msg: fmt.Sprintf("--format: %q is not text or json", format)}
			}
			if err != nil {
				return err
			}
			if code := rep.ExitCode(); code != 0 {
				return &exitError{code: code, msg: rep.Summary()}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&verbose, "verbose", "v", false, "print every case, not only failures")
	f.StringVar(&run, "run", "", "run only cases whose name (or 'suite/case') matches this regular expression")
	f.StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}

func newEvalCmd() *cobra.Command {
	var flags policytest.RequestFlags
	var requestFile string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "eval DIR",
		Short: "Decide one request against a policy directory and explain the decision",
		Long: `Decide one request and print the decision, the determining policies and any
evaluation errors.

  vigil eval examples/quickstart --principal 'User::"alice"' \
    --action 'Action::"GET /documents/{id}"' --resource 'Document::"doc-1"' \
    --context '{"device":{"compliant":true}}'
  vigil eval examples/quickstart --request request.json --json

Exit status: 0 allow, 3 deny, 2 bad input.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			snap, err := compileDir(cmd.ErrOrStderr(), args[0])
			if err != nil {
				return err
			}
			var req policytest.Request
			if requestFile != "" {
				var data []byte
				if requestFile == "-" {
					data, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 16<<20))
				} else {
					data, err = os.ReadFile(requestFile)
				}
				if err != nil {
					return &exitError{code: 2, msg: fmt.Sprintf("--request: %v", err)}
				}
				req, err = policytest.ParseRequestJSON(requestFile, data)
			} else {
				req, err = policytest.ParseRequest(flags)
			}
			if err != nil {
				return &exitError{code: 2, msg: err.Error()}
			}
			res := policytest.Eval(snap, req)
			if err := policytest.WriteResult(cmd.OutOrStdout(), req, res, asJSON); err != nil {
				return err
			}
			if !res.Allow {
				return &exitError{code: 3}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&flags.Principal, "principal", "", `principal UID, e.g. 'User::"alice"'`)
	f.StringVar(&flags.Action, "action", "", `action UID or bare name, e.g. 'Action::"read"' or read`)
	f.StringVar(&flags.Resource, "resource", "", `resource UID, e.g. 'Document::"doc-1"'`)
	f.StringVar(&flags.Context, "context", "", "context as a JSON object")
	f.StringVar(&flags.Entities, "entities", "", "extra entities as a Cedar entities JSON array")
	f.StringVar(&requestFile, "request", "", "read the whole request from a JSON/YAML file ('-' for stdin)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
