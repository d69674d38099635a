package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newMigrateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Create or upgrade the database schema (serve also does this at start)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			st, _, err := openStore(cmd.Context(), cfg.DB, g.env, log, 0)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := migrate(cmd.Context(), st); err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), "schema is up to date")
			return err
		},
	}
}
