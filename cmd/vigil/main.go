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
		fmt.Fprintln(os.Stderr, "vigil:", err)
		os.Exit(exitCode(err))
	}
}
