package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/netguard"
	"github.com/lethe-privacy/lethe/internal/pipeline"
	"github.com/lethe-privacy/lethe/internal/seal"
	"github.com/lethe-privacy/lethe/internal/suppression"
)

// callbackSecretDomain derives the admin callback secret from the master
// key when callbacks.secret is not set: stable across restarts and
// processes, useless without the key, and never stored.
const callbackSecretDomain = "lethe/callbacks/admin-secret"

// callbackSecret is the secret that signs callbacks of admin-submitted
// requests: callbacks.secret, or one derived from the master key.
func callbackSecret(cfg *config.Config, keys *seal.Keyring) string {
	if cfg.Callbacks.Secret != "" {
		return cfg.Callbacks.Secret
	}
	return keys.Hash(callbackSecretDomain, "v1")
}

// callbackConfig turns the file's callbacks section into the pipeline's.
func callbackConfig(cfg *config.Config, keys *seal.Keyring) pipeline.CallbackConfig {
	return pipeline.CallbackConfig{
		Window:      cfg.Callbacks.Window,
		Timeout:     cfg.Callbacks.Timeout,
		AdminSecret: callbackSecret(cfg, keys),
		AllowHosts:  cfg.Callbacks.AllowHosts,
		Guard:       callbackGuard(cfg),
	}
}

// callbackURLs is what intake accepts as a callback_url: what delivery
// will be allowed to reach.
func callbackURLs(cfg *config.Config) netguard.CallbackURLs {
	return netguard.CallbackURLs{Guard: callbackGuard(cfg), Hosts: cfg.Callbacks.AllowHosts}
}

// callbackGuard is the address check of callbacks: public addresses and
// callbacks.allow_private_hosts, or everything with
// forbid_private_addresses: false.
func callbackGuard(cfg *config.Config) *netguard.Guard {
	allow := cfg.Callbacks.AllowPrivateHosts
	if !cfg.Callbacks.ForbidPrivateAddresses {
		allow = []string{"0.0.0.0/0", "::/0"}
	}
	g, err := netguard.New(allow)
	if err != nil {
		// config.Load validated every entry; refuse everything private
		// rather than guess.
		return netguard.Strict()
	}
	return g
}

func newCallbacksCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "callbacks",
		Short: "Status callbacks (docs/callbacks.md)",
	}
	secret := &cobra.Command{
		Use:   "secret",
		Short: "Print the secret that signs callbacks of admin-submitted requests, for the receiver",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			return g.withStore(cmd, func(_ context.Context, _ migratingStore, keys *seal.Keyring) error {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), callbackSecret(cfg, keys))
				return err
			})
		},
	}
	cmd.AddCommand(secret)
	return cmd
}

func newSuppressionsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "suppressions",
		Short: "The suppression list (docs/suppression.md)",
	}
	var identity string
	remove := &cobra.Command{
		Use:   "remove --identity TYPE:VALUE",
		Short: "Take an identity off the suppression list (audited, with its hash only)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, v, ok := strings.Cut(identity, ":")
			if !ok || t == "" || v == "" {
				return fmt.Errorf("--identity wants TYPE:VALUE (e.g. email:a@example.com)")
			}
			return g.withStore(cmd, func(ctx context.Context, st migratingStore, _ *seal.Keyring) error {
				n, err := suppression.Remove(ctx, st, lethe.Identity{Type: lethe.IdentityType(t), Value: v}, lethe.ActorAdmin, "", time.Now())
				if err != nil {
					return err
				}
				return printJSON(cmd.OutOrStdout(), map[string]int{"removed": n})
			})
		},
	}
	remove.Flags().StringVar(&identity, "identity", "", "identity as TYPE:VALUE (email, phone, user_id or x-<name>)")
	_ = remove.MarkFlagRequired("identity")
	cmd.AddCommand(remove)
	return cmd
}
