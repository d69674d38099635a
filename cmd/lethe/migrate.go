package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/lethe-privacy/lethe/internal/seal"
)

func newMigrateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Create or upgrade the database schema (serve also does this at start)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// withStore has migrated by the time it calls back.
			return g.withStore(cmd, func(context.Context, migratingStore, *seal.Keyring) error {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), "schema is up to date")
				return err
			})
		},
	}
}
