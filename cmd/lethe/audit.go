package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/seal"
)

// newAuditCmd verifies the audit log directly on the database (--db).
func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Verify the hash-chained audit log",
	}
	var requestID string
	verify := &cobra.Command{
		Use:   "verify [--request ID]",
		Short: "Recompute every audit chain (or one request's) and report the first broken link of each",
		Long: "Recomputes each request's chain of audit events, checks every receipt's signature and that the\n" +
			"chain still holds the head the receipt names, and that no request has lost its chain.\n" +
			"Exits non-zero when anything is broken.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withStore(cmd, func(ctx context.Context, st migratingStore, keys *seal.Keyring) error {
				pub, err := audit.KeyMap(ctx, st)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				var rep audit.Report
				if cmd.Flags().Changed("request") {
					p, err := audit.VerifyRequest(ctx, st, requestID, pub)
					if err != nil {
						return err
					}
					rep.Chains = 1
					if p != nil {
						rep.Problems = append(rep.Problems, *p)
					}
				} else if rep, err = audit.VerifyAll(ctx, st, pub); err != nil {
					return err
				}
				for _, p := range rep.Problems {
					fmt.Fprintln(out, "BROKEN", p.String())
				}
				if n := len(rep.Problems); n > 0 {
					return fmt.Errorf("audit: %d of %d chains are broken", n, rep.Chains)
				}
				_, err = fmt.Fprintf(out, "ok: %d chains verified\n", rep.Chains)
				return err
			})
		},
	}
	verify.Flags().StringVar(&requestID, "request", "", "verify only this request's chain and receipt")
	cmd.AddCommand(verify)
	return cmd
}

// newReceiptCmd verifies receipts offline: no database, only public keys.
func newReceiptCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "receipt",
		Short: "Verify signed receipts offline",
	}
	var (
		pubKeys  []string
		keysFile string
	)
	verify := &cobra.Command{
		Use:   "verify FILE (--public-key KEY... | --keys-file FILE)",
		Short: "Check a receipt's signature against public keys, without the database",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			keys := map[string]ed25519.PublicKey{}
			for _, s := range pubKeys {
				k, err := audit.ParsePublicKey(s)
				if err != nil {
					return fmt.Errorf("--public-key: %w", err)
				}
				keys[audit.KeyID(k)] = k
			}
			if keysFile != "" {
				b, err := os.ReadFile(keysFile)
				if err != nil {
					return err
				}
				var set struct {
					Keys []audit.PublicKey `json:"keys"`
				}
				if err := json.Unmarshal(b, &set); err != nil {
					return fmt.Errorf("--keys-file: want the JSON of GET /v1/signing-keys: %w", err)
				}
				for _, pk := range set.Keys {
					k, err := audit.ParsePublicKey(pk.PublicKey)
					if err != nil {
						return fmt.Errorf("--keys-file: key %s: %w", pk.KeyID, err)
					}
					// The id is recomputed, never trusted from the file.
					keys[audit.KeyID(k)] = k
				}
			}
			if len(keys) == 0 {
				return errors.New("give the signer's public key with --public-key or --keys-file")
			}
			doc, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			rc, err := audit.Verify(doc, keys)
			if errors.Is(err, audit.ErrPartnerReceipt) {
				pr, err := audit.VerifyPartner(doc, keys)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "ok: partner receipt of request %s (%s, completed %s) is signed by a given key; it names the full receipt sha256 %s\n",
					pr.RequestID, pr.Status, pr.CompletedAt, pr.Receipt)
				return err
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "ok: receipt of request %s (%s, completed %s) is signed by a given key; audit chain head %s after %d events\n",
				rc.RequestID, rc.Status, rc.CompletedAt, rc.Audit.Head, rc.Audit.Events)
			return err
		},
	}
	verify.Flags().StringArrayVar(&pubKeys, "public-key", nil, "Ed25519 public key, base64 or hex of 32 bytes (repeatable)")
	verify.Flags().StringVar(&keysFile, "keys-file", "", "file holding the JSON answer of GET /v1/signing-keys")
	cmd.AddCommand(verify)
	return cmd
}

// newKeysCmd manages the receipt signing keys on the database (--db).
func newKeysCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "List and rotate the keys that sign receipts",
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "Print every signing key's public half, as GET /v1/signing-keys does",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withStore(cmd, func(ctx context.Context, st migratingStore, keys *seal.Keyring) error {
				pub, err := audit.PublicKeys(ctx, st)
				if err != nil {
					return err
				}
				if pub == nil {
					pub = []audit.PublicKey{}
				}
				return printJSON(cmd.OutOrStdout(), map[string]any{"keys": pub})
			})
		},
	}
	rotate := &cobra.Command{
		Use:   "rotate-signing",
		Short: "Generate a new receipt signing key (stored sealed) and retire the current one",
		Long: "The retired key's public half stays published, so receipts it signed keep verifying.\n" +
			"Running lethe processes sign with the key they loaded until they restart.\n" +
			"Has no effect on processes started with LETHE_SIGNING_KEY, which always sign with that key.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withStore(cmd, func(ctx context.Context, st migratingStore, keys *seal.Keyring) error {
				id, err := audit.RotateSigning(ctx, st, keys, time.Now())
				if err != nil {
					return err
				}
				if v, ok := g.env(audit.EnvSigningKey); ok && v != "" {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s is set; processes started with it make that key current again\n", audit.EnvSigningKey)
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "new signing key %s; restart lethe to sign with it\n", id)
				return err
			})
		},
	}
	cmd.AddCommand(list, rotate)
	return cmd
}

// loadSigner loads (or, on first start, generates) the receipt signing
// key; see audit.LoadSigner for where it comes from.
func loadSigner(ctx context.Context, st migratingStore, keys *seal.Keyring, env lookupEnv, log *slog.Logger) (*audit.Signer, error) {
	envKey, _ := env(audit.EnvSigningKey)
	signer, created, err := audit.LoadSigner(ctx, st, keys, strings.TrimSpace(envKey), time.Now())
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("generated the receipt signing key; it is stored sealed in the database", "key_id", signer.KeyID())
	}
	return signer, nil
}
