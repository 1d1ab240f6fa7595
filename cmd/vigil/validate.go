package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vigil-authz/vigil/internal/policy"
)

func newValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate DIR",
		Short: "Check a policy directory: syntax, schema, entities, duplicate IDs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := policy.LoadDir(args[0])
			if err != nil {
				return err
			}
			snap, err := policy.Compile(b)
			if err != nil {
				var ce *policy.CompileError
				if errors.As(err, &ce) {
					for _, p := range ce.Problems {
						fmt.Fprintln(cmd.ErrOrStderr(), p.String())
					}
					return &exitError{code: 1, msg: fmt.Sprintf("%s: %d problem(s)", args[0], len(ce.Problems))}
				}
				return err
			}
			schema := "no schema"
			if snap.Schema != nil {
				schema = "validated against the schema"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok — %d policies, %d entities, %s (version %s)\n",
				args[0], snap.Index.Len(), len(snap.Entities), schema, snap.ID)
			return nil
		},
	}
}
