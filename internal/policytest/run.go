package policytest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"

	"github.com/vigil-authz/vigil/internal/decision"
	"github.com/vigil-authz/vigil/internal/policy"
)

// Test file name suffixes that Discover picks up in directories.
var testSuffixes = []string{"_test.yaml", "_test.yml", ".test.yaml", ".test.yml"}

// IsTestFile reports whether a file name marks a policy test file.
func IsTestFile(name string) bool {
	for _, s := range testSuffixes {
		if strings.HasSuffix(name, s) && len(name) > len(s) {
			return true
		}
	}
	return false
}

// ErrNoTestFiles is returned by Discover when it finds nothing to run.
var ErrNoTestFiles = errors.New("no test files (*_test.yaml or *.test.yaml) found")

// Discover expands paths into test files: a directory contributes every
// *_test.yaml, *_test.yml, *.test.yaml and *.test.yml below it (hidden
// files and directories skipped); a file is taken as given. The result is
// sorted and free of duplicates.
func Discover(paths ...string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, root := range paths {
		info, err := os.Stat(root)
		if err != nil {
			return nil, fmt.Errorf("find test files: %w", err)
		}
		if !info.IsDir() {
			add(filepath.Clean(root))
			continue
		}
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p != root && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.IsDir() && IsTestFile(d.Name()) {
				add(p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("find test files in %q: %w", root, err)
		}
	}
	if len(out) == 0 {
		return nil, ErrNoTestFiles
	}
	slices.Sort(out)
	return out, nil
}

// Options tune a test run.
type Options struct {
	// Filter, when set, runs only the cases whose name, or "suite/case",
	// it matches.
	Filter *regexp.Regexp
}

// Status is the outcome of one case.
type Status string

// Case outcomes.
const (
	Pass Status = "pass"
	Fail Status = "fail"
	Skip Status = "skip"
)

// Report is the outcome of a test run.
type Report struct {
	Files   []FileResult `json:"files"`
	Passed  int          `json:"passed"`
	Failed  int          `json:"failed"`
	Skipped int          `json:"skipped"`
}

// FileResult is the outcome of one test file.
type FileResult struct {
	File  string       `json:"file"`
	Name  string       `json:"name"`
	Cases []CaseResult `json:"cases"`
}

// CaseResult is the outcome of one case.
type CaseResult struct {
	Name   string `json:"name"`
	Line   int    `json:"line"`
	Status Status `json:"status"`
	// Failures say why the case failed, one mismatch each.
	Failures []string `json:"failures,omitempty"`
	// SkipReason is the case's skip: text.
	SkipReason string `json:"skip_reason,omitempty"`
	// What was decided (absent for skipped cases and requests the schema
	// rejected).
	Decided bool                 `json:"decided"`
	Allow   bool                 `json:"allow"`
	Reasons []string             `json:"reasons,omitempty"`
	Errors  []decision.EvalError `json:"errors,omitempty"`
}

// OK reports whether no case failed.
func (r Report) OK() bool { return r.Failed == 0 }

// ExitCode is the process exit code for the run: 0 when every case that
// ran passed, 1 otherwise. (Test files that do not load are the caller's
// to report; `vigil test` exits 2 for those.)
func (r Report) ExitCode() int {
	if r.OK() {
		return 0
	}
	return 1
}

// Summary is the closing line: "N passed, M failed", with ", K skipped"
// appended when cases were skipped.
func (r Report) Summary() string {
	s := fmt.Sprintf("%d passed, %d failed", r.Passed, r.Failed)
	if r.Skipped > 0 {
		s += fmt.Sprintf(", %d skipped", r.Skipped)
	}
	return s
}

// Run loads the test files and runs every case against snap. Files that
// do not parse make Run return a *LoadError listing every problem before
// any case runs, the way a compile error stops `go test`. The result of
// each case is in the Report; failing cases are not errors.
func Run(snap *policy.Snapshot, files []string, opts Options) (Report, error) {
	var suites []*Suite
	var probs []policy.Problem
	for _, name := range files {
		s, err := readSuite(name)
		if err != nil {
			var le *LoadError
			if errors.As(err, &le) {
				probs = append(probs, le.Problems...)
			} else {
				probs = append(probs, policy.Problem{File: name, Message: err.Error()})
			}
			continue
		}
		suites = append(suites, s)
	}
	if len(probs) > 0 {
		return Report{}, &LoadError{Problems: probs}
	}
	if snap == nil {
		return Report{}, errors.New("run policy tests: no policy set")
	}
	r := NewRunner(snap)
	var rep Report
	for _, s := range suites {
		rep.Add(r.RunSuite(s, opts))
	}
	return rep, nil
}

// Add appends a file's results to the report and counts them.
func (r *Report) Add(fr FileResult) {
	for _, c := range fr.Cases {
		switch c.Status {
		case Pass:
			r.Passed++
		case Fail:
			r.Failed++
		case Skip:
			r.Skipped++
		}
	}
	r.Files = append(r.Files, fr)
}

func readSuite(name string) (*Suite, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read test file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read test file: %w", err)
	}
	return Parse(name, data)
}

// Runner runs parsed suites against one snapshot. It is safe for
// concurrent use.
type Runner struct {
	snap      *policy.Snapshot
	validator *validate.Validator // nil without a schema
}

// NewRunner returns a Runner for snap.
func NewRunner(snap *policy.Snapshot) *Runner {
	r := &Runner{snap: snap}
	if snap != nil && snap.Schema != nil {
		r.validator = validate.New(snap.Schema)
	}
	return r
}

// RunSuite runs the cases of one suite that opts select.
func (r *Runner) RunSuite(s *Suite, opts Options) FileResult {
	fr := FileResult{File: s.File, Name: s.Name, Cases: []CaseResult{}}
	for _, c := range s.Cases {
		if opts.Filter != nil && !opts.Filter.MatchString(c.Name) && !opts.Filter.MatchString(s.Name+"/"+c.Name) {
			continue
		}
		fr.Cases = append(fr.Cases, r.RunCase(c))
	}
	return fr
}

// RunCase runs one case.
func (r *Runner) RunCase(c Case) CaseResult {
	res := CaseResult{Name: c.Name, Line: c.Line}
	if c.Skip != "" {
		res.Status, res.SkipReason = Skip, c.Skip
		return res
	}
	req := c.Request.Decision(r.snap)
	if c.Validate && r.validator != nil {
		if errs := r.validate(req); len(errs) > 0 {
			res.Status = Fail
			for _, e := range errs {
				res.Failures = append(res.Failures, "request does not match the schema: "+e+" (add validate: false to the case if that is intended)")
			}
			return res
		}
	}
	got := decision.Decide(r.snap, req)
	res.Decided, res.Allow, res.Reasons, res.Errors = true, got.Allow, got.Reasons(), got.Errors

	if got.Allow != c.Allow {
		res.Failures = append(res.Failures, fmt.Sprintf("got %s, want %s", word(got.Allow), word(c.Allow)))
	}
	if c.CheckReasons {
		want := slices.Sorted(slices.Values(c.Reasons))
		want = slices.Compact(want)
		if !slices.Equal(res.Reasons, want) {
			res.Failures = append(res.Failures, fmt.Sprintf("determining policies: got %s, want %s", list(res.Reasons), list(want)))
		}
	}
	if c.Errors != nil && *c.Errors != (len(got.Errors) > 0) {
		if *c.Errors {
			res.Failures = append(res.Failures, "got no evaluation errors, want some")
		} else {
			res.Failures = append(res.Failures, fmt.Sprintf("got %d evaluation error(s), want none", len(got.Errors)))
		}
	}
	// Decisions must be identical with and without the scope index; a
	// difference is a bug in Vigil, not in the policies, and must not pass
	// silently.
	un := decision.DecideUnindexed(r.snap, req)
	if un.Allow != got.Allow || !slices.Equal(un.Reasons(), got.Reasons()) || !slices.Equal(un.Errors, got.Errors) {
		res.Failures = append(res.Failures, fmt.Sprintf("internal error: the scope index changed the decision (indexed: %s %s, unindexed: %s %s); please report this bug",
			word(got.Allow), list(got.Reasons()), word(un.Allow), list(un.Reasons())))
	}
	if len(res.Failures) > 0 {
		res.Status = Fail
	} else {
		res.Status = Pass
	}
	return res
}

func (r *Runner) validate(req decision.Request) []string {
	var out []string
	ctx := req.Context
	if ctx.Len() == 0 {
		ctx = types.Record{}
	}
	if err := r.validator.Request(types.Request{Principal: req.Principal, Action: req.Action, Resource: req.Resource, Context: ctx}); err != nil {
		out = append(out, err.Error())
	}
	uids := make([]types.EntityUID, 0, len(req.Entities))
	for u := range req.Entities {
		uids = append(uids, u)
	}
	slices.SortFunc(uids, func(a, b types.EntityUID) int { return strings.Compare(a.String(), b.String()) })
	for _, u := range uids {
		if err := r.validator.Entity(req.Entities[u]); err != nil {
			out = append(out, fmt.Sprintf("entity %s: %v", u, err))
		}
	}
	return out
}

func word(allow bool) string {
	if allow {
		return "allow"
	}
	return "deny"
}

func list(ids []string) string {
	if len(ids) == 0 {
		return "[]"
	}
	return "[" + strings.Join(ids, ", ") + "]"
}

// WriteText prints the report the way `go test` does: a line per failed
// case with the reasons indented below it (every case in verbose mode),
// then the summary line "N passed, M failed" alone as the last line.
func (r Report) WriteText(w io.Writer, verbose bool) error {
	var b strings.Builder
	for _, f := range r.Files {
		if verbose {
			fmt.Fprintf(&b, "=== %s: %s\n", f.File, f.Name)
		}
		for _, c := range f.Cases {
			loc := fmt.Sprintf("%s:%d", f.File, c.Line)
			switch {
			case c.Status == Fail:
				fmt.Fprintf(&b, "--- FAIL: %s (%s)\n", c.Name, loc)
				for _, m := range c.Failures {
					fmt.Fprintf(&b, "    %s\n", m)
				}
				if c.Decided {
					fmt.Fprintf(&b, "    decided %s; determining policies: %s\n", word(c.Allow), list(c.Reasons))
					for _, e := range c.Errors {
						fmt.Fprintf(&b, "    evaluation error in %s: %s\n", e.PolicyID, e.Message)
					}
				}
			case !verbose:
			case c.Status == Pass:
				fmt.Fprintf(&b, "--- PASS: %s (%s)\n", c.Name, loc)
			case c.Status == Skip:
				fmt.Fprintf(&b, "--- SKIP: %s (%s): %s\n", c.Name, loc, c.SkipReason)
			}
		}
	}
	b.WriteString(r.Summary())
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON prints the report as one JSON document.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
