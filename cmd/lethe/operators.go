package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/lethe-privacy/lethe/internal/operators"
	"github.com/lethe-privacy/lethe/internal/seal"
)

// newOperatorsCmd manages named operators directly on the database (--db),
// like clients. A token is generated (256 bits; none can be chosen) and
// printed once: lethe keeps only its keyed hash.
func newOperatorsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "operators",
		Short: "Create, list, rotate, disable and enable the named operators of the native API",
	}
	var name, role string
	create := &cobra.Command{
		Use:   "create --name NAME --role viewer|reviewer|admin",
		Short: "Create an operator; its bearer token is printed once, as JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := operators.ParseRole(role)
			if err != nil {
				return err
			}
			if err := operators.ValidateName(name); err != nil {
				return err
			}
			return g.withOperators(cmd, func(ctx context.Context, svc *operators.Service) error {
				c, err := svc.Create(ctx, name, r)
				if err != nil {
					return err
				}
				return printJSON(cmd.OutOrStdout(), c)
			})
		},
	}
	create.Flags().StringVar(&name, "name", "", "unique operator name, as the audit log shows it (required)")
	create.Flags().StringVar(&role, "role", "", "viewer (reads), reviewer (acts on requests) or admin (manages clients, operators, targets) (required)")
	_ = create.MarkFlagRequired("name")
	_ = create.MarkFlagRequired("role")

	list := &cobra.Command{
		Use:   "list",
		Short: "List operators (no tokens)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withOperators(cmd, func(ctx context.Context, svc *operators.Service) error {
				ops, err := svc.List(ctx)
				if err != nil {
					return err
				}
				type row struct {
					Name      string     `json:"name"`
					Role      string     `json:"role"`
					Disabled  bool       `json:"disabled"`
					CreatedAt time.Time  `json:"created_at"`
					RotatedAt *time.Time `json:"rotated_at,omitempty"`
				}
				rows := make([]row, len(ops))
				for i, o := range ops {
					rows[i] = row{Name: o.Name, Role: o.Role, Disabled: o.Disabled, CreatedAt: o.CreatedAt}
					if !o.RotatedAt.IsZero() {
						t := o.RotatedAt
						rows[i].RotatedAt = &t
					}
				}
				return printJSON(cmd.OutOrStdout(), rows)
			})
		},
	}

	rotate := &cobra.Command{
		Use:   "rotate NAME",
		Short: "Issue a new token, printed once; the old one stops working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withOperators(cmd, func(ctx context.Context, svc *operators.Service) error {
				c, err := svc.Rotate(ctx, args[0])
				if err != nil {
					return err
				}
				return printJSON(cmd.OutOrStdout(), c)
			})
		},
	}
	sw := func(use, done, short string, disabled bool) *cobra.Command {
		return &cobra.Command{
			Use:   use + " NAME",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return g.withOperators(cmd, func(ctx context.Context, svc *operators.Service) error {
					if err := svc.SetDisabled(ctx, args[0], disabled); err != nil {
						return err
					}
					_, err := fmt.Fprintf(cmd.OutOrStdout(), "operator %s %s\n", args[0], done)
					return err
				})
			},
		}
	}
	cmd.AddCommand(create, list, rotate,
		sw("disable", "disabled", "Disable an operator: its token stops working at once", true),
		sw("enable", "enabled", "Enable a disabled operator: its token works again", false))
	return cmd
}

func (g *globals) withOperators(cmd *cobra.Command, fn func(context.Context, *operators.Service) error) error {
	return g.withStore(cmd, func(ctx context.Context, st migratingStore, keys *seal.Keyring) error {
		return fn(ctx, operators.NewService(st, keys, nil))
	})
}
