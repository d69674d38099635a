// Command lethe runs the lethe service and its administrative commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd(os.Stdout, os.Stderr, os.LookupEnv).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lethe:", err)
		os.Exit(1)
	}
}

// lookupEnv is os.LookupEnv, injected so tests control the environment.
type lookupEnv func(string) (string, bool)

func newRootCmd(stdout, stderr io.Writer, env lookupEnv) *cobra.Command {
	g := &globals{env: env}
	root := &cobra.Command{
		Use:           "lethe",
		Short:         "Carry out data-subject deletion requests across your own systems, with proof",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnv(cmd, env); err != nil {
				return err
			}
			// Checked before any command opens or creates anything.
			if g.db != "" {
				db, err := normaliseDB(g.db)
				if err != nil {
					return err
				}
				g.db = db
			}
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.configPath, "config", "", "YAML configuration file (env LETHE_CONFIG)")
	pf.StringVar(&g.db, "db", "", "database: a postgres:// (or postgresql://) URL, or a SQLite file path (plain or sqlite:PATH); any other scheme is an error (env LETHE_DB; default ./lethe.db)")
	pf.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error (env LETHE_LOG_LEVEL)")
	root.AddCommand(
		newServeCmd(g),
		newMigrateCmd(g),
		newRequestsCmd(),
		newTasksCmd(),
		newClientsCmd(g),
		newOperatorsCmd(g),
		newAuditCmd(g),
		newReceiptCmd(),
		newKeysCmd(g),
		newPlanCmd(g),
		newMapCmd(g),
		newCallbacksCmd(g),
		newSuppressionsCmd(g),
		newVersionCmd(),
	)
	requireSubcommands(root)
	return root
}

// requireSubcommands makes every command that groups others fail on a
// word that is none of them (a typo such as `clients disabel` would
// otherwise print help and exit 0, having done nothing) with the nearest
// names as suggestions, and fail when given no subcommand at all.
//
// A command that groups none answers a wrong number of arguments with its
// usage line, so `lethe tasks attest ID shop` says --target was meant.
func requireSubcommands(c *cobra.Command) {
	if !c.HasSubCommands() {
		if check := c.Args; check != nil {
			c.Args = func(cmd *cobra.Command, args []string) error {
				if err := check(cmd, args); err != nil {
					return fmt.Errorf("%w; usage: %s", err, cmd.UseLine())
				}
				return nil
			}
		}
		return
	}
	c.SuggestionsMinimumDistance = 2
	c.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "; did you mean " + strings.Join(s, " or ") + "?"
		}
		return fmt.Errorf("%s (see %s --help)", msg, cmd.CommandPath())
	}
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		var names []string
		for _, sub := range cmd.Commands() {
			if sub.IsAvailableCommand() {
				names = append(names, sub.Name())
			}
		}
		return fmt.Errorf("%s needs a subcommand: %s (see %s --help)", cmd.CommandPath(), strings.Join(names, ", "), cmd.CommandPath())
	}
	for _, sub := range c.Commands() {
		requireSubcommands(sub)
	}
}

// globals are the flags every command shares.
type globals struct {
	env        lookupEnv
	configPath string
	db         string
	logLevel   string
}

// bindEnv gives every flag not set on the command line the value of its
// environment variable, LETHE_ followed by the flag name in upper snake
// case, so each flag has an env equivalent without listing them twice.
func bindEnv(cmd *cobra.Command, env lookupEnv) error {
	var errs []error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		name := envName(f.Name)
		v, ok := env(name)
		if !ok && envAliases[name] != "" {
			name = envAliases[name]
			v, ok = env(name)
		}
		if !ok {
			return
		}
		if err := f.Value.Set(v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			return
		}
		f.Changed = true
	})
	return errors.Join(errs...)
}

// envAliases are other names a flag's variable is read under when its own
// is unset: LETHE_URL is what curl scripts commonly call the server.
var envAliases = map[string]string{"LETHE_SERVER": "LETHE_URL"}

func envName(flag string) string {
	return "LETHE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "lethe", version)
			return err
		},
	}
}
