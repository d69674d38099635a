package sqlconn_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// citextDB creates a database of its own with the citext extension (an
// extension belongs to a whole database, so not a test schema) and
// returns its DSN; it is dropped after the test.
func citextDB(t *testing.T) string {
	t.Helper()
	base := testdb.Service(t, testdb.EnvPostgres)
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := "lethe_citext_" + hex.EncodeToString(b)
	admin := testdb.OpenDB(t, "pgx", base)
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Logf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// TestPostgresColumnsOfExtensionTypes: identities and keys stored in
// citext, PostgreSQL's case-insensitive text (an extension's type, which
// pgx cannot encode arrays of), are matched, erased and verified: their
// lists are IN lists, the built-in types' arrays.
func TestPostgresColumnsOfExtensionTypes(t *testing.T) {
	t.Parallel()
	dsn := citextDB(t)
	db := testdb.OpenDB(t, "pgx", dsn)
	for _, stmt := range []string{
		`CREATE EXTENSION citext`,
		`CREATE TABLE users (id BIGINT PRIMARY KEY, email CITEXT NOT NULL, handle CITEXT)`,
		`CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id BIGINT REFERENCES users (id), email CITEXT)`,
		`CREATE TABLE sessions (token CITEXT PRIMARY KEY, user_email CITEXT)`,
		`INSERT INTO users VALUES (1, 'Ann@Example.com', 'ann'), (2, 'bo@example.com', 'bo')`,
		`INSERT INTO orders VALUES (10, 1, 'ANN@example.com'), (11, 1, NULL), (12, 2, 'bo@example.com')`,
		`INSERT INTO sessions VALUES ('s-ann-1', 'ann@EXAMPLE.com'), ('s-ann-2', 'Ann@Example.com'), ('s-bo', 'bo@example.com')`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	c := openMap(t, testdb.TargetDBsOf("postgres")[0], dsn, `
- name: users
  root: true
  identities: {email: email, x-handle: handle}
  match: {email: exact, handle: exact}
  action: delete
- name: orders
  identities: {email: email}
  match: {email: exact}
  references: {column: user_id, table: users}
  action: delete
- name: sessions
  primary_key: token
  identities: {email: user_email}
  match: {user_email: exact}
  action: delete
`)
	ctx := context.Background()
	sub := connector.Subject{RequestID: "req-citext", Identities: []lethe.Identity{{Type: lethe.IdentityEmail, Value: "ann@example.com"}}}
	r, err := c.ResolveSubject(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	sub.Identities = append(sub.Identities, r.Identities...)
	rep, err := c.Erase(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.Total(); got != 5 {
		t.Errorf("erased %d rows (%+v), want 5: ann's user, two orders, two sessions", got, rep.Items)
	}
	if err := c.Verify(ctx, sub); err != nil {
		t.Fatal(err)
	}
	for table, want := range map[string]int{"users": 1, "orders": 1, "sessions": 1} {
		var n int
		if err := db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("%s: %d rows left, want %d (bo's)", table, n, want)
		}
	}
	var left sql.NullString
	if err := db.QueryRow("SELECT max(token) FROM sessions").Scan(&left); err != nil || left.String != "s-bo" {
		t.Errorf("session left: %v (%v), want bo's", left, err)
	}
}
