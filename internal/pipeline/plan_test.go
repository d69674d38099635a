package pipeline

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/sqlconn"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// demoShop seeds the demo shop on driver ("sqlite" or "postgres") and
// returns its pool and a connector built from the demo's data map, through
// the config loader as `lethe serve` builds it.
func demoShop(t *testing.T, driver string) (*sql.DB, *sqlconn.Connector) {
	t.Helper()
	ctx := context.Background()
	dsn, db := testdb.TargetDBsOf(driver)[0].Open(t)
	if _, _, err := demo.Create(ctx, db, driver, 120); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte("targets:\n"+demo.TargetYAML(driver, dsn, "plan-test-hash-key-0123")), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := sqlconn.New(ctx, cfg.ConnectorTargets()[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Validate(ctx); err != nil {
		t.Fatal(err)
	}
	return db, c
}

// dump renders every row of the shop, to prove a plan changed nothing.
func dump(t *testing.T, db *sql.DB) string {
	t.Helper()
	var b strings.Builder
	for _, table := range demo.Tables {
		rows, err := db.Query("SELECT * FROM " + table + " ORDER BY id")
		if err != nil {
			t.Fatal(err)
		}
		_, all := testdb.ScanRows(t, rows)
		for _, vals := range all {
			fmt.Fprintf(&b, "%s %q\n", table, fmt.Sprint(vals...))
		}
	}
	return b.String()
}

// TestPlanMatchesErase: on the demo shop (SQLite and PostgreSQL targets),
// a plan changes nothing, follows linked identities like resolve does, and
// counts exactly what the pipeline then erases; afterwards only retained
// rows remain to plan, and every other customer is untouched.
func TestPlanMatchesErase(t *testing.T) {
	t.Parallel()
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db, conn := demoShop(t, driver)
			// A customer with a ticket written from a second address: only
			// resolve (email -> user id -> order -> ticket) finds it.
			var userID int64
			var email string
			err := db.QueryRow(`SELECT u.id, u.email FROM users u JOIN orders o ON o.user_id = u.id
				JOIN support_tickets s ON s.order_id = o.id WHERE s.email <> u.email ORDER BY u.id LIMIT 1`).Scan(&userID, &email)
			if err != nil {
				t.Fatal(err)
			}
			targets := []Target{{Name: demo.TargetName, Conn: conn}}
			planner, err := NewPlanner(Config{}, targets, nil)
			if err != nil {
				t.Fatal(err)
			}
			given := []lethe.Identity{{Type: lethe.IdentityEmail, Value: email}}

			before := dump(t, db)
			plan, err := planner.Plan(ctx, given)
			if err != nil {
				t.Fatal(err)
			}
			if after := dump(t, db); after != before {
				t.Fatal("Plan changed the shop")
			}
			// user_id, phone and the ticket's second address.
			if plan.Given != 1 || plan.Linked != 3 || plan.Capped || len(plan.Targets) != 1 || plan.Targets[0].Err != nil {
				t.Fatalf("plan = %+v", plan)
			}
			rows := map[string]int64{}
			for _, it := range plan.Targets[0].Report.Items {
				rows[it.Object] = it.Rows
			}
			if rows["users"] != 1 || rows["orders"] < 1 || rows["support_tickets"] < 1 || rows["invoices"] != rows["orders"] {
				t.Fatalf("plan rows = %v", rows)
			}

			// Erase it for real through the pipeline.
			st := openStore(t, "sqlite")
			p := start(t, st, testConfig(), targets...)
			id := submit(t, st, p, given...)
			req := waitDone(t, st, id, lethe.StatusCompleted)
			if diff := cmp.Diff(plan.Targets[0].Report, req.Tasks[0].Report); diff != "" {
				t.Errorf("erase did not do what the plan said (-plan +erase):\n%s", diff)
			}
			// The pipeline's own Plan, on what is left: only the retained
			// invoices (still found by their billing email).
			again, err := p.Plan(ctx, given)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range again.Targets[0].Report.Items {
				want := int64(0)
				if it.Action == lethe.ActionRetain {
					want = rows[it.Object]
				}
				if it.Rows != want {
					t.Errorf("after erase, plan has %d rows in %s, want %d", it.Rows, it.Object, want)
				}
			}
			var left, others int
			if err := db.QueryRow(`SELECT COUNT(*) FROM users WHERE id = ` + fmt.Sprint(userID)).Scan(&left); err != nil || left != 0 {
				t.Errorf("user row left: %d %v", left, err)
			}
			if err := db.QueryRow(`SELECT COUNT(*) FROM users`).Scan(&others); err != nil || others != 119 {
				t.Errorf("%d other users, want 119 (%v)", others, err)
			}
		})
	}
}

// TestPlanErrors: a failing Resolve gives no plan at all, a failing Plan
// marks only its target, resolve's identity limit holds, and no message
// carries an identity value.
func TestPlanErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	linked := lethe.Identity{Type: lethe.IdentityUserID, Value: "u-4242"}

	a := newMemTarget()
	a.links[email] = []lethe.Identity{linked}
	b := newMemTarget()
	b.resolveErr = fmt.Errorf("lookup of %s timed out", email.Value)
	pl, err := NewPlanner(Config{}, []Target{{"a", a}, {"b", b}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pl.Plan(ctx, []lethe.Identity{email})
	var re *ResolveError
	if !errors.As(err, &re) || re.Target != "b" || strings.Contains(err.Error(), email.Value) {
		t.Fatalf("resolve failure: %v", err)
	}

	b.resolveErr = nil
	pl, err = NewPlanner(Config{}, []Target{{"a", a}, {"b", quotingPlan{b}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := pl.Plan(ctx, []lethe.Identity{email})
	if err != nil {
		t.Fatal(err)
	}
	failed := plan.Failed()
	if plan.Linked != 1 || len(failed) != 1 || failed[0].Target != "b" || plan.Targets[0].Err != nil {
		t.Fatalf("plan = %+v", plan)
	}
	if msg := failed[0].Err.Error(); strings.Contains(msg, email.Value) || strings.Contains(msg, linked.Value) {
		t.Errorf("plan error quotes an identity: %s", msg)
	}

	pl, err = NewPlanner(Config{MaxIdentities: 1}, []Target{{"a", a}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var tm *TooManyIdentitiesError
	if _, err := pl.Plan(ctx, []lethe.Identity{email}); !errors.As(err, &tm) || tm.Reached != 2 {
		t.Errorf("identity limit: %v", err)
	}
	if _, err := NewPlanner(Config{}, []Target{{"a", a}, {"a", b}}, nil); err == nil {
		t.Error("duplicate target names accepted")
	}
}

// quotingPlan is a target whose Plan error quotes the subject, as a
// careless connector's might.
type quotingPlan struct{ *memTarget }

func (q quotingPlan) Plan(ctx context.Context, s connector.Subject) (lethe.Report, error) {
	return lethe.Report{}, fmt.Errorf("no table for %s / %s", s.Identities[0].Value, s.Identities[1].Value)
}
