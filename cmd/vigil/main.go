// Command vigil is continuous authorization for REST APIs: a policy
// decision point (AuthZEN, Cedar) and an enforcement gateway that decide
// every request against live policies and live signals.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(os.Stderr, "vigil:", msg)
		}
		os.Exit(exitCode(err))
	}
}
