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

	"github.com/lethe-privacy/lethe/internal/demo"
)

// planDB opens a fresh SQLite database named file in a temporary
// directory, returning the directory, its DSN and the connection.
func planDB(t *testing.T, file string) (string, string, *sql.DB) {
	t.Helper()
	dir := t.TempDir()
	dsn := "file:" + filepath.Join(dir, file) + "?_pragma=busy_timeout(5000)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return dir, dsn, db
}

// runCLI runs the lethe command with args and no environment, returning
// its output, its error output and its error.
func runCLI(args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	cmd := newRootCmd(&out, &errOut, func(string) (string, bool) { return "", false })
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// TestPlanCommand: `lethe plan` on the demo shop's data map prints the
// counts per table, as a table or JSON, never the identity values, and
// changes nothing.
func TestPlanCommand(t *testing.T) {
	t.Parallel()
	dir, dsn, db := planDB(t, "shop.db")
	if _, _, err := demo.Create(context.Background(), db, "sqlite", 50); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "lethe.yaml")
	if err := os.WriteFile(cfgPath, []byte("targets:\n"+demo.TargetYAML("sqlite", dsn, "plan-cmd-hash-key-012345")), 0o600); err != nil {
		t.Fatal(err)
	}
	p := demo.People(1)[0]
	run := runCLI

	out, errOut, err := run("plan", "--config", cfgPath, "--identity", "email: "+strings.ToUpper(p.Email)+" ", "--identity", "phone:"+p.Phone)
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, errOut)
	}
	for _, want := range []string{"Plan for 2 identities given and 1 linked one", "users", "invoices", "retain", "Nothing was changed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, leak := range []string{p.Email, strings.ToUpper(p.Email), p.Phone, p.Phone[1:]} {
		if strings.Contains(out+errOut, leak) {
			t.Errorf("output discloses an identity value:\n%s%s", out, errOut)
		}
	}

	out, _, err = run("plan", "--config", cfgPath, "--identity", "user_id:1", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var v planView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if !v.DryRun || v.GivenIdentities != 1 || len(v.Targets) != 1 || v.Targets[0].Target != demo.TargetName {
		t.Fatalf("json plan = %+v", v)
	}
	users := -1
	for _, it := range v.Targets[0].Items {
		if it.Object == "users" {
			users = int(it.Rows)
		}
	}
	if users != 1 {
		t.Errorf("users rows = %d, want 1", users)
	}
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM users`).Scan(&n); err != nil || n != 50 {
		t.Errorf("users after plan = %d, %v", n, err)
	}

	for _, bad := range [][]string{
		{"plan", "--identity", "email:" + p.Email},                              // no config
		{"plan", "--config", cfgPath},                                           // no identity
		{"plan", "--config", cfgPath, "--identity", p.Email},                    // no type
		{"plan", "--config", cfgPath, "--identity", "email:not-" + p.FirstName}, // invalid email
		{"plan", "--config", cfgPath, "--identity", "passport:" + p.FirstName},  // unknown type
	} {
		if _, _, err := run(bad...); err == nil {
			t.Errorf("%v: no error", bad)
		} else if strings.Contains(err.Error(), p.Email) || strings.Contains(err.Error(), "not-"+p.FirstName) {
			t.Errorf("%v: error quotes the value: %v", bad, err)
		}
	}
}

// TestPlanCommandShowsAmbiguousStop: a phone two accounts share reaches
// two root rows; the plan names the accounts reached and the stop, as a
// table and as JSON, and plans no target.
func TestPlanCommandShowsAmbiguousStop(t *testing.T) {
	t.Parallel()
	dir, dsn, db := planDB(t, "accounts.db")
	for _, q := range []string{
		`CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, phone TEXT)`,
		`INSERT INTO users (id, email, phone) VALUES (1, 'dan@example.com', '+1 201-555-0777'), (2, 'Eve@example.com', '(201) 555-0777'), (3, 'fay@example.com', NULL)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := filepath.Join(dir, "lethe.yaml")
	cfg := "targets:\n  - name: accounts\n    kind: sql\n    driver: sqlite\n    dsn: \"" + dsn + "\"\n    default_region: US\n    tables:\n" +
		"      - {name: users, root: true, identities: {email: email, phone: phone, user_id: id}, action: delete}\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	run := runCLI

	out, errOut, err := run("plan", "--config", cfgPath, "--identity", "phone:+12015550777")
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, errOut)
	}
	for _, want := range []string{"accounts/users", "would stop as ambiguous_subject", "Nothing was changed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Would delete") || strings.Contains(out, "2015550777") {
		t.Errorf("a stopping plan lists erasures or a value:\n%s", out)
	}

	out, _, err = run("plan", "--config", cfgPath, "--identity", "phone:+12015550777", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var v planView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if v.WouldStop != "ambiguous_subject" || v.Reach == nil || v.Reach.Accounts["accounts/users"] != 2 || len(v.Targets) != 0 {
		t.Errorf("json plan = %+v, want would_stop ambiguous_subject, 2 accounts, no targets", v)
	}

	// One account: no stop, the target planned.
	out, _, err = run("plan", "--config", cfgPath, "--identity", "email:fay@example.com", "--json")
	if err != nil {
		t.Fatal(err)
	}
	v = planView{}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if v.WouldStop != "" || len(v.Targets) != 1 || v.Reach == nil || v.Reach.Accounts["accounts/users"] != 1 {
		t.Errorf("json plan of one account = %+v", v)
	}
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM users`).Scan(&n); err != nil || n != 3 {
		t.Errorf("users after plan = %d, %v", n, err)
	}
}
