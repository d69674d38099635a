package pipeline

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/store"
)

// sqliteShop is a SQLite shop of users, their orders and their retained
// invoices, reached through the real SQL connector. With blocked, the
// invoices hold a RESTRICT key to users, so every delete of the subject's
// user is refused (the map check, which would refuse this map, is
// bypassed: the pipeline is given the connector directly).
func sqliteShop(t *testing.T, dir string, blocked bool) (Target, *sql.DB) {
	t.Helper()
	invoices := `CREATE TABLE invoices (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL)`
	if blocked {
		invoices = `CREATE TABLE invoices (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE RESTRICT)`
	}
	path := filepath.Join(dir, "shop.db")
	dsn := "file:" + path + "?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(2)
	t.Cleanup(func() { db.Close() })
	for _, q := range []string{
		`CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)`,
		`CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users (id))`,
		invoices,
		`INSERT INTO users VALUES (1, 'ada.lovelace@example.com'), (2, 'other@example.org')`,
		`INSERT INTO orders VALUES (10, 1), (11, 1), (12, 2)`,
		`INSERT INTO invoices VALUES (20, 1), (21, 2)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	shop := sqliteTarget(t, dsn,
		"      - {name: users, identities: {email: email}, action: delete}\n"+
			"      - {name: orders, references: {column: user_id, table: users}, action: delete}\n"+
			"      - {name: invoices, references: {column: user_id, table: users}, action: retain, reason: \"tax law\"}\n")
	return shop, db
}

func tableCounts(t *testing.T, db *sql.DB) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, table := range []string{"users", "orders", "invoices"} {
		var n int64
		if err := db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[table] = n
	}
	return out
}

// TestReceiptCountsWhatChanged: the user delete is refused on every
// attempt, so the request fails; its task report and receipt say exactly
// what changed (orders 2, users 0), never the plan's users 1, and the
// target's outcome is failed with its error.
func TestReceiptCountsWhatChanged(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		shop, db := sqliteShop(t, t.TempDir(), true)
		cfg := testConfig()
		cfg.MaxAttempts = 3
		p := start(t, st, cfg, shop)
		before := tableCounts(t, db)
		id := submit(t, st, p, email)
		r := waitDone(t, st, id, lethe.StatusFailed)
		after := tableCounts(t, db)
		task := taskOf(t, r, "shop")
		if task.State != lethe.TaskFailed || task.Attempts != cfg.MaxAttempts {
			t.Fatalf("task = %+v, want failed after %d attempts", task, cfg.MaxAttempts)
		}
		rc := audit.NewReceipt(r, r.Tasks, nil, nil)
		tr := rc.Targets[0]
		if tr.Outcome != audit.OutcomeFailed || tr.Error == "" {
			t.Errorf("receipt target = %+v, want outcome failed with the error", tr)
		}
		assertNoValue(t, "receipt error", tr.Error, email)
		got := map[string]int64{}
		for _, it := range tr.Items {
			if it.LowerBound {
				t.Errorf("%s is marked a lower bound; the ledger's counts are exact", it.Object)
			}
			got[it.Object+" "+it.Action] = it.Rows
		}
		for _, table := range []string{"users", "orders"} {
			if want := before[table] - after[table]; got[table+" delete"] != want {
				t.Errorf("receipt %s delete rows = %d, want %d (the rows the table lost)", table, got[table+" delete"], want)
			}
		}
		if got["users delete"] != 0 || got["orders delete"] != 2 || got["invoices retain"] != 1 {
			t.Errorf("receipt items = %v; want users delete 0, orders delete 2, invoices retain 1", got)
		}
	})
}
