package sqlconn_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/lethe-privacy/lethe/connector/sqlconn"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// The connector's PostgreSQL sessions run generic plans (its lists are
// array parameters, whose custom plans would be made on every call),
// unless the DSN chooses plan_cache_mode itself.
func TestPostgresSessionsRunGenericPlans(t *testing.T) {
	t.Parallel()
	b := testdb.TargetDBsOf("postgres")[0]
	_, dsn := newShop(t, b)
	for _, tc := range []struct{ dsn, want string }{
		{dsn, "force_generic_plan"},
		{dsn + "&plan_cache_mode=auto", "auto"},
	} {
		var db *sql.DB
		c, err := sqlconn.NewOpenedBy(shopTarget(b.Driver, tc.dsn, 1000, ""), func(driver, dsn string) (*sql.DB, error) {
			var err error
			db, err = sql.Open(driver, dsn)
			return db, err
		})
		if err != nil {
			t.Fatal(err)
		}
		var got string
		err = db.QueryRowContext(context.Background(), "SHOW plan_cache_mode").Scan(&got)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("plan_cache_mode %q, want %q", got, tc.want)
		}
	}
}
