package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/lethe-privacy/lethe/internal/clients"
	"github.com/lethe-privacy/lethe/internal/seal"
)

// newClientsCmd manages clients directly on the database (--db), so it
// works before any server runs. Generated credentials are printed once.
func newClientsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "clients",
		Short: "Create, list, rotate, disable and enable the clients allowed to submit requests",
	}
	var p clients.CreateParams
	create := &cobra.Command{
		Use:   "create --name NAME",
		Short: "Create a client; credentials not given are generated and printed once, as JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, s := range []struct{ flag, v string }{{"--secret", p.Secret}, {"--client-secret", p.ClientSecret}} {
				if err := checkSecretStrength(s.flag, s.v); err != nil {
					return err
				}
			}
			return g.withClients(cmd, func(ctx context.Context, svc *clients.Service) error {
				c, err := svc.Create(ctx, p)
				if err != nil {
					return err
				}
				return printJSON(cmd.OutOrStdout(), c)
			})
		},
	}
	f := create.Flags()
	f.StringVar(&p.Name, "name", "", "unique client name (required)")
	f.StringVar(&p.APIKey, "api-key", "", "s2s X-API-KEY (generated when empty)")
	f.StringVar(&p.Secret, "secret", "", fmt.Sprintf("s2s HMAC shared secret (generated when empty; given: at least %d characters, %d different)", minSecretLen, minSecretDistinct))
	f.StringVar(&p.ClientID, "client-id", "", "connect OAuth client_id (generated when empty)")
	f.StringVar(&p.ClientSecret, "client-secret", "", fmt.Sprintf("connect OAuth client_secret (generated when empty; given: at least %d characters, %d different)", minSecretLen, minSecretDistinct))
	_ = create.MarkFlagRequired("name")

	list := &cobra.Command{
		Use:   "list",
		Short: "List clients (no credentials)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClients(cmd, func(ctx context.Context, svc *clients.Service) error {
				cs, err := svc.List(ctx)
				if err != nil {
					return err
				}
				type row struct {
					ID        string    `json:"id"`
					Name      string    `json:"name"`
					Disabled  bool      `json:"disabled"`
					CreatedAt time.Time `json:"created_at"`
				}
				rows := make([]row, len(cs))
				for i, c := range cs {
					rows[i] = row{c.ID, c.Name, c.Disabled, c.CreatedAt}
				}
				return printJSON(cmd.OutOrStdout(), rows)
			})
		},
	}

	var overlap time.Duration
	rotate := &cobra.Command{
		Use:   "rotate-secret NAME",
		Short: "Issue new shared and OAuth secrets; the old ones keep working for --overlap",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClients(cmd, func(ctx context.Context, svc *clients.Service) error {
				r, err := svc.RotateSecret(ctx, args[0], overlap)
				if err != nil {
					return err
				}
				return printJSON(cmd.OutOrStdout(), r)
			})
		},
	}
	rotate.Flags().DurationVar(&overlap, "overlap", clients.DefaultOverlap, "how long the old secrets stay valid (0 ends them now)")

	disable := g.clientSwitchCmd("disable", "disabled",
		"Disable a client: its keys, secrets and tokens stop working at once (tokens for good)",
		(*clients.Service).Disable)
	enable := g.clientSwitchCmd("enable", "enabled",
		"Enable a disabled client: its keys and secrets work again; tokens issued before the disable do not",
		(*clients.Service).Enable)
	cmd.AddCommand(create, list, rotate, disable, enable)
	return cmd
}

// A secret given to `clients create` must be at least minSecretLen
// characters with minSecretDistinct different ones: about the 128 bits of
// a random 32-character hex string at the least, and never a word or a
// repeated character. Generated secrets carry 256 bits.
const (
	minSecretLen      = 32
	minSecretDistinct = 10
)

// checkSecretStrength refuses a given secret that is short or repetitive;
// "" (generate one) passes. The message never quotes the secret.
func checkSecretStrength(flag, v string) error {
	if v == "" {
		return nil
	}
	distinct := map[rune]bool{}
	for _, r := range v {
		distinct[r] = true
	}
	if len(v) < minSecretLen || len(distinct) < minSecretDistinct {
		return fmt.Errorf("%s is too weak: give at least %d characters with %d different ones (e.g. openssl rand -hex 32), or leave it out to have one generated", flag, minSecretLen, minSecretDistinct)
	}
	return nil
}

// clientSwitchCmd is `clients disable` or `clients enable`: apply to the
// client named by the one argument, then say it is done.
func (g *globals) clientSwitchCmd(verb, done, short string, apply func(*clients.Service, context.Context, string) error) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClients(cmd, func(ctx context.Context, svc *clients.Service) error {
				if err := apply(svc, ctx, args[0]); err != nil {
					return err
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "client %s %s\n", args[0], done)
				return err
			})
		},
	}
}

// withClients is withStore for the clients commands, which work through
// the clients service.
func (g *globals) withClients(cmd *cobra.Command, fn func(context.Context, *clients.Service) error) error {
	return g.withStore(cmd, func(ctx context.Context, st migratingStore, keys *seal.Keyring) error {
		svc, err := clients.New(st, keys, clients.Config{})
		if err != nil {
			return err
		}
		return fn(ctx, svc)
	})
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
