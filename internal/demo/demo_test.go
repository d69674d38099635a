package demo_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	_ "modernc.org/sqlite"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector/sqlconn"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/demo"
)

// TestPeopleDeterministic: the same people every time, and a prefix of a
// larger shop is the smaller shop, so docs can name person 1.
func TestPeopleDeterministic(t *testing.T) {
	t.Parallel()
	a, b := demo.People(demo.DefaultPeople), demo.People(demo.DefaultPeople)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Fatalf("two runs differ (-first +second):\n%s", diff)
	}
	if diff := cmp.Diff(a[:20], demo.People(20)); diff != "" {
		t.Errorf("People(20) is not a prefix of People(300):\n%s", diff)
	}
	// A golden value: if this changes, docs/demo.md's examples do too.
	if got := a[0].Email; got == "" || a[0].ID != 1 {
		t.Fatalf("person 1 = %+v", a[0])
	}
	if n := len(demo.People(demo.MaxPeople + 10)); n != demo.MaxPeople {
		t.Errorf("People(MaxPeople+10) made %d people", n)
	}
}

// TestPeopleValid: every email and phone is already in the form intake
// normalises to (or the shop could never be matched), and none is shared.
func TestPeopleValid(t *testing.T) {
	t.Parallel()
	emails, phones := map[string]bool{}, map[string]bool{}
	countries := map[string]int{}
	for _, p := range demo.People(demo.MaxPeople) {
		for _, id := range []lethe.Identity{{Type: lethe.IdentityEmail, Value: p.Email}, {Type: lethe.IdentityPhone, Value: p.Phone}} {
			n, err := lethe.NormalizeIdentity(id)
			if err != nil {
				t.Fatalf("person %d: %s does not normalise: %v", p.ID, id.Type, err)
			}
			if n.Value != id.Value {
				t.Errorf("person %d: %s is not stored normalised", p.ID, id.Type)
			}
		}
		if emails[p.Email] || phones[p.Phone] {
			t.Errorf("person %d shares an email or phone", p.ID)
		}
		emails[p.Email], phones[p.Phone] = true, true
		countries[p.Country]++
		if p.FirstName == "" || p.LastName == "" || p.Street == "" || p.City == "" || p.Postcode == "" || p.CreatedAt.IsZero() {
			t.Errorf("person %d is incomplete: %+v", p.ID, p)
		}
	}
	if len(countries) < 5 {
		t.Errorf("people come from %d countries, want all 5", len(countries))
	}
}

func openSQLite(t *testing.T) (*sql.DB, string) {
	t.Helper()
	dsn := "file:" + filepath.Join(t.TempDir(), "shop.db") + "?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, dsn
}

// TestCreateIdempotent: the second Create changes nothing, and the data
// map that describes the shop passes the config loader and the SQL
// connector's checks against the live schema.
func TestCreateIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, dsn := openSQLite(t)
	counts, seeded, err := demo.Create(ctx, db, "sqlite", demo.DefaultPeople)
	if err != nil || !seeded {
		t.Fatalf("first Create: seeded=%v err=%v", seeded, err)
	}
	for _, table := range demo.Tables {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 || n != counts[table] {
			t.Errorf("%s holds %d rows, Create reported %d", table, n, counts[table])
		}
	}
	if counts["users"] != demo.DefaultPeople {
		t.Errorf("users = %d", counts["users"])
	}
	if _, seeded, err := demo.Create(ctx, db, "sqlite", demo.DefaultPeople); err != nil || seeded {
		t.Fatalf("second Create: seeded=%v err=%v", seeded, err)
	}
	var users int
	if err := db.QueryRow(`SELECT COUNT(*) FROM users`).Scan(&users); err != nil || users != demo.DefaultPeople {
		t.Fatalf("after the second Create: %d users, err %v", users, err)
	}

	cfg, err := config.Parse([]byte("targets:\n"+demo.TargetYAML("sqlite", dsn, "demo-hash-key-0123456789")), nil)
	if err != nil {
		t.Fatalf("data map does not load: %v", err)
	}
	c, err := sqlconn.New(ctx, cfg.ConnectorTargets()[0])
	if err != nil {
		t.Fatalf("sqlconn.New: %v", err)
	}
	defer c.Close()
	if err := c.Validate(ctx); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	cs, err := demo.Customers(ctx, db, 3)
	if err != nil || len(cs) != 3 || cs[0].ID != 1 || cs[0].Email != demo.People(1)[0].Email {
		t.Fatalf("Customers = %+v, %v", cs, err)
	}
}
