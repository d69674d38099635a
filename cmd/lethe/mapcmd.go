package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/sqlconn"
	"github.com/lethe-privacy/lethe/internal/pipeline"
)

func newMapCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "map",
		Short: "Check a data map against the live schema, or propose one from a database",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newMapCheckCmd(g), newMapDiscoverCmd())
	return cmd
}

func newMapCheckCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check --config FILE",
		Short: "Check every target of the data map against its live system and list every problem",
		Long: `Connects to every target of the data map and checks the map against what
the system holds, as serve does at start: tables and columns exist, and
(for SQL targets) no foreign key would refuse or silently extend an erase:
retained or unmapped tables referencing deleted rows, ON DELETE CASCADE or
SET NULL into tables the map does not declare in cascades, NOT NULL
columns pseudonymized to null. Warnings name unmapped tables that look
personal (with a suggested entry) and match columns without an index on
large tables. Every problem is listed at once; no value is read or
printed. Exits non-zero when there are errors.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.configPath == "" {
				return errors.New("map check needs --config (or LETHE_CONFIG): the data map to check")
			}
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			reg, err := registry()
			if err != nil {
				return err
			}
			var problems []connector.Problem
			for _, t := range cfg.ConnectorTargets() {
				problems = append(problems, checkTarget(cmd.Context(), reg, t)...)
			}
			if asJSON {
				if problems == nil {
					problems = []connector.Problem{}
				}
				err = printJSON(cmd.OutOrStdout(), problems)
			} else {
				err = printProblems(cmd.OutOrStdout(), problems, len(cfg.Targets))
			}
			if err != nil {
				return err
			}
			if n := len(connector.Errors(problems)); n > 0 {
				return fmt.Errorf("the data map has %s", plural(n, "error", "errors"))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the problems as JSON")
	return cmd
}

// checkTarget builds one target's connector and returns what Validate and
// CheckSchema find, each failure as a problem so that every target is
// checked.
func checkTarget(ctx context.Context, reg *connector.Registry, t connector.Target) []connector.Problem {
	fail := func(err error) []connector.Problem {
		var out []connector.Problem
		for _, e := range splitJoined(err) {
			msg, prefix := e.Error(), fmt.Sprintf("target %q: ", t.Name)
			for strings.HasPrefix(msg, prefix) {
				msg = strings.TrimPrefix(msg, prefix)
			}
			out = append(out, connector.Problem{Severity: connector.SeverityError, Target: t.Name, Message: msg})
		}
		return out
	}
	c, err := reg.New(ctx, t)
	if err != nil {
		return fail(err)
	}
	if cl, ok := c.(connector.Closer); ok {
		defer cl.Close()
	}
	var out []connector.Problem
	if v, ok := c.(connector.Validator); ok {
		if err := v.Validate(ctx); err != nil {
			out = append(out, fail(err)...)
		}
	}
	if sc, ok := c.(connector.SchemaChecker); ok {
		ps, err := sc.CheckSchema(ctx)
		if err != nil {
			return append(out, fail(err)...)
		}
		out = append(out, ps...)
	}
	return out
}

// splitJoined undoes errors.Join, so each configuration error is one line.
func splitJoined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, splitJoined(e)...)
		}
		return out
	}
	return []error{err}
}

func printProblems(w io.Writer, ps []connector.Problem, targets int) error {
	for _, p := range ps {
		fmt.Fprintln(w, p)
		if p.Suggestion != "" {
			fmt.Fprintln(w, "  suggested entry:")
			for _, line := range strings.Split(strings.TrimRight(p.Suggestion, "\n"), "\n") {
				fmt.Fprintln(w, "    "+line)
			}
		}
	}
	errs := len(connector.Errors(ps))
	_, err := fmt.Fprintf(w, "Checked %s: %s, %s.\n", plural(targets, "target", "targets"),
		plural(errs, "error", "errors"), plural(len(ps)-errs, "warning", "warnings"))
	return err
}

// checkDataMap runs CheckSchema on every target that has it, as serve and
// plan do before anything else: warnings are logged (names only, never
// values), errors refuse the start.
func checkDataMap(ctx context.Context, targets []pipeline.Target, log *slog.Logger) error {
	var errs []error
	for _, t := range targets {
		sc, ok := t.Conn.(connector.SchemaChecker)
		if !ok {
			continue
		}
		ps, err := sc.CheckSchema(ctx)
		if err != nil {
			return err
		}
		for _, p := range ps {
			if p.Severity == connector.SeverityError {
				errs = append(errs, errors.New(p.String()))
				continue
			}
			log.Warn("data map check", "target", p.Target, "table", p.Table, "column", p.Column, "problem", p.Message)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("the data map does not fit the live schema (%s; `lethe map check` lists them with suggestions):\n%w",
			plural(len(errs), "error", "errors"), errors.Join(errs...))
	}
	return nil
}

func newMapDiscoverCmd() *cobra.Command {
	var (
		o    sqlconn.DiscoverOptions
		out  string
		dsnV string
	)
	cmd := &cobra.Command{
		Use:   "discover --driver DRIVER --dsn DSN --root TABLE [--sample] [--out FILE]",
		Short: "Propose a data map for a SQL database, rooted at the table of the people it holds",
		Long: `Reads the schema of a PostgreSQL, MySQL/MariaDB or SQLite database and writes
a proposed configuration with one SQL target: the root table (e.g. users)
with its primary key as the user_id identity, every table linked to it by
foreign keys (or by columns named like its id) with those references, and
every table with columns that look like emails or phones. Tables come
children before parents; every guess is marked "# REVIEW:". With --sample
a few values of each text column are read to recognise emails and phones
by their values; they are never printed or kept.

The DSN is not written into the file: the map reads it from the
environment variable named by --dsn-env. Resolve the REVIEW marks, then
run lethe map check.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Driver == "" || o.DSN == "" || o.Root == "" {
				return errors.New("map discover needs --driver, --dsn (or LETHE_DSN) and --root")
			}
			o.DSNVar = dsnV
			doc, err := sqlconn.Discover(cmd.Context(), o)
			if err != nil {
				return fmt.Errorf("discover: %w", err)
			}
			if out == "" || out == "-" {
				_, err = cmd.OutOrStdout().Write(doc)
				return err
			}
			// Never over an existing file: it may be a reviewed map.
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("write map: %w", err)
			}
			if _, err := f.Write(doc); err != nil {
				f.Close()
				return fmt.Errorf("write map: %w", err)
			}
			if err := f.Close(); err != nil {
				return fmt.Errorf("write map: %w", err)
			}
			_, err = fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s: resolve its REVIEW marks, then run lethe map check --config %s\n", out, out)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Driver, "driver", "", "postgres, mysql or sqlite")
	f.StringVar(&o.DSN, "dsn", "", "the database's DSN, as the map's dsn takes it (env LETHE_DSN)")
	f.StringVar(&o.Root, "root", "", "the table of the people erased for, e.g. users")
	f.StringVar(&o.Target, "name", "app", "the target's name in the proposed map")
	f.StringVar(&dsnV, "dsn-env", "", "the environment variable the map reads the DSN from (default NAME_DSN)")
	f.BoolVar(&o.Sample, "sample", false, "read a few values of each text column to recognise emails and phones (never printed)")
	f.StringVar(&out, "out", "", "write the map to this new file instead of stdout")
	return cmd
}
