package sqlconn_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/sqlconn"
	"github.com/lethe-privacy/lethe/internal/connlimit"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// A target whose server refuses connections as full (a role or user at
// its connection limit) fails a call only after the wait, with an error
// the pipeline retries (not Permanent) that names neither the subject nor
// the user; once a slot frees, the connector validates and erases.
func TestTargetServerFull(t *testing.T) {
	for _, b := range testdb.TargetDBsOf("postgres", "mysql") {
		t.Run(b.Driver, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			_, base := newShop(t, b)
			const limit = 2
			var dsn, user string
			var hold func() func(int)
			if b.Driver == "postgres" {
				dsn = testdb.PostgresRole(t, base, limit)
				cfg, err := pgx.ParseConfig(dsn)
				if err != nil {
					t.Fatal(err)
				}
				user = cfg.User
				hold = func() func(int) { return testdb.HoldPostgres(t, dsn, limit) }
			} else {
				dsn = testdb.MariaDBUser(t, base, limit)
				cfg, err := mysql.ParseDSN(dsn)
				if err != nil {
					t.Fatal(err)
				}
				user = cfg.User
				hold = func() func(int) { return testdb.HoldMariaDB(t, dsn, limit) }
			}
			target := connector.Target{Name: "shop", Kind: sqlconn.Kind, Decode: func(v any) error {
				return yaml.Unmarshal([]byte(fmt.Sprintf(shopMap, b.Driver, strconv.Quote(dsn), 1000)), v)
			}}
			alice := people[0]
			subj := connector.Subject{RequestID: "req-full", Identities: []lethe.Identity{{Type: lethe.IdentityEmail, Value: alice.Email.(string)}}}

			release := hold()
			c, err := sqlconn.NewWaitingUpTo(target, 300*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Erase(ctx, subj)
			if err == nil {
				t.Fatal("Erase on a full server succeeded")
			}
			if !connlimit.Reached(err) || connector.IsPermanent(err) {
				t.Errorf("Erase = %v; want the limit reached, not permanent (the pipeline retries it)", err)
			}
			for _, bad := range []string{user, alice.Email.(string), "127.0.0.1"} {
				if strings.Contains(err.Error(), bad) {
					t.Errorf("error shows %q: %v", bad, err)
				}
			}

			for i := range limit {
				time.AfterFunc(time.Duration(i+1)*300*time.Millisecond, func() { release(i) })
			}
			c2, err := sqlconn.NewWaitingUpTo(target, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			if err := c2.Validate(ctx); err != nil {
				t.Fatalf("Validate once slots free: %v", err)
			}
			rep, err := c2.Erase(ctx, subj)
			if err != nil {
				t.Fatalf("Erase once slots free: %v", err)
			}
			if rep.Total() == 0 {
				t.Errorf("Erase erased nothing: %+v", rep)
			}
		})
	}
}
