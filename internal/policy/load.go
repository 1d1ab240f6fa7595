package policy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrNoPolicies is returned by LoadDir when a directory holds no policy file.
var ErrNoPolicies = errors.New("no *.cedar policy files found")

// LoadDir reads a policy directory into a Bundle: every *.cedar,
// *.cedarschema, *.cedarschema.json and *.entities.json file below dir.
// Hidden files and directories (starting with ".") are skipped so that
// editor swap files and VCS metadata never become part of a policy set.
func LoadDir(dir string) (Bundle, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return Bundle{}, fmt.Errorf("read policy directory %q: %w", dir, err)
	}
	if !info.IsDir() {
		return Bundle{}, fmt.Errorf("policy directory %q is not a directory", dir)
	}
	var b Bundle
	total := 0
	policies := 0
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if p != dir && strings.HasPrefix(name, ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || Kind(name) == "" {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		fi, err := os.Stat(p) // follows symlinks
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		if fi.Size() > MaxFileBytes {
			return fmt.Errorf("%s is %d bytes; at most %d are allowed", rel, fi.Size(), MaxFileBytes)
		}
		if len(b.Files) >= MaxFiles {
			return fmt.Errorf("more than %d policy files", MaxFiles)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		total += len(data)
		if total > MaxTotal {
			return fmt.Errorf("policy files add up to more than %d bytes", MaxTotal)
		}
		if Kind(name) == "policy" {
			policies++
		}
		b.Files = append(b.Files, File{Name: filepath.ToSlash(rel), Data: data})
		return nil
	})
	if err != nil {
		return Bundle{}, fmt.Errorf("read policy directory %q: %w", dir, err)
	}
	if policies == 0 {
		return Bundle{}, fmt.Errorf("read policy directory %q: %w", dir, ErrNoPolicies)
	}
	return b, nil
}
