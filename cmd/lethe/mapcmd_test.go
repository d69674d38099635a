package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/internal/demo"
)

// runWithEnv runs the command line with env as the environment and
// returns stdout, stderr and the error.
func runWithEnv(t *testing.T, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCmd(&out, &errOut, cliDB{env: env}.lookup)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// sqliteApp opens a new SQLite database in dir, with foreign keys
// enforced as a real deployment's DSN would, and returns it and its DSN.
func sqliteApp(t *testing.T, dir string, stmts ...string) (*sql.DB, string) {
	t.Helper()
	dsn := "file:" + filepath.Join(dir, "app.db") + "?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, stmt := range stmts {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	return db, dsn
}

// TestMapCommandsOnDemoShop: the demo shop's own map passes `lethe map
// check` without an error or a warning; `lethe map discover --sample`
// proposes a map without errors, without writing the DSN or any value it
// sampled.
func TestMapCommandsOnDemoShop(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, dsn := sqliteApp(t, dir)
	if _, _, err := demo.Create(context.Background(), db, "sqlite", 50); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "lethe.yaml")
	if err := os.WriteFile(cfgPath, []byte("targets:\n"+demo.TargetYAML("sqlite", dsn, "map-cmd-hash-key-0123456789")), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := runWithEnv(t, nil, "map", "check", "--config", cfgPath)
	if err != nil || !strings.Contains(out, "Checked 1 target: 0 errors, 0 warnings.") {
		t.Fatalf("map check of the demo map: %v\n%s%s", err, out, errOut)
	}
	t.Logf("map check, demo map:\n%s", out)

	proposed := filepath.Join(dir, "proposed.yaml")
	_, errOut, err = runWithEnv(t, map[string]string{"LETHE_DSN": dsn},
		"map", "discover", "--driver", "sqlite", "--root", "users", "--name", "shop", "--sample", "--out", proposed)
	if err != nil {
		t.Fatalf("discover: %v\n%s", err, errOut)
	}
	doc, err := os.ReadFile(proposed)
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	if strings.Contains(text, dsn) || !strings.Contains(text, "dsn: ${SHOP_DSN}") {
		t.Errorf("the proposed map must read the DSN from SHOP_DSN, not hold it:\n%s", text)
	}
	for _, p := range demo.People(50) {
		if strings.Contains(text, p.Email) || strings.Contains(text, p.Phone) || strings.Contains(text, p.LastName) {
			t.Fatalf("the proposed map holds a sampled value:\n%s", text)
		}
	}
	if n := strings.Count(text, "REVIEW:"); n < 6 {
		t.Errorf("%d REVIEW marks, want one per table at least:\n%s", n, text)
	}
	out, errOut, err = runWithEnv(t, map[string]string{"SHOP_DSN": dsn}, "map", "check", "--config", proposed, "--json")
	if err != nil {
		t.Fatalf("map check of the proposed map: %v\n%s%s\n%s", err, out, errOut, text)
	}
	var ps []connector.Problem
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(connector.Errors(ps)) != 0 {
		t.Errorf("proposed map has errors: %v", ps)
	}
	if !strings.Contains(text, "root: true") {
		t.Errorf("the proposed map does not mark its root table root: true:\n%s", text)
	}
	for _, p := range ps {
		if strings.Contains(p.Message, "no table is root") {
			t.Errorf("the proposed map is rootless: %s", p.Message)
		}
	}
	// Running discover again must not overwrite the (maybe reviewed) file.
	if _, _, err := runWithEnv(t, map[string]string{"LETHE_DSN": dsn},
		"map", "discover", "--driver", "sqlite", "--root", "users", "--out", proposed); err == nil {
		t.Error("discover overwrote an existing file")
	}
}

// TestMapCheckRefusesServeAndPlan: a retained invoices table whose foreign
// key to users is RESTRICT makes map check, plan and serve refuse the
// map, naming the table and column, before any row changes.
func TestMapCheckRefusesServeAndPlan(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, dsn := sqliteApp(t, dir,
		`CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)`,
		`CREATE TABLE addresses (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users (id), street TEXT)`,
		`CREATE TABLE invoices (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE RESTRICT)`,
		`INSERT INTO users VALUES (1, 'a@example.com')`,
		`INSERT INTO addresses VALUES (1, 1, 'Main St')`,
		`INSERT INTO invoices VALUES (1, 1)`)
	cfgPath := filepath.Join(dir, "lethe.yaml")
	cfg := `targets:
  - name: app
    kind: sql
    driver: sqlite
    dsn: ${APP_DSN}
    tables:
      - name: users
        identities: {email: email, user_id: id}
        action: delete
      - name: addresses
        references: {column: user_id, table: users}
        action: delete
      - name: invoices
        references: {column: user_id, table: users}
        action: retain
        reason: tax law
`
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"APP_DSN": dsn}
	out, _, err := runWithEnv(t, env, "map", "check", "--config", cfgPath)
	if err == nil || !strings.Contains(out, `error: target "app": table "invoices": column "user_id"`) || !strings.Contains(out, "could never finish") {
		t.Errorf("map check: err %v\n%s", err, out)
	}
	_, _, err = runWithEnv(t, env, "plan", "--config", cfgPath, "--identity", "user_id:1")
	if err == nil || !strings.Contains(err.Error(), `table "invoices"`) {
		t.Errorf("plan: err = %v, want the check's error naming invoices", err)
	}
	_, _, err = runWithEnv(t, env, "serve", "--config", cfgPath, "--db", filepath.Join(dir, "lethe.db"), "--listen", "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), "does not fit the live schema") || !strings.Contains(err.Error(), `table "invoices"`) {
		t.Errorf("serve: err = %v, want a refusal naming invoices", err)
	}
	for _, table := range []string{"users", "addresses", "invoices"} {
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil || n != 1 {
			t.Errorf("%s rows = %d (%v), want 1: nothing may change", table, n, err)
		}
	}
}
