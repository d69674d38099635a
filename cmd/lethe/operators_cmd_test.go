package main

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOperatorsCommands drives `lethe operators` on a real database and
// the operator-facing `lethe requests` commands against a running server:
// roles decide what each token may do, the audit log and the register name
// the operator, a disabled operator is refused at once.
func TestOperatorsCommands(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			testOperatorsCommands(t, newCLIDB(t, dialect))
		})
	}
}

type operatorOut struct {
	Name  string `json:"name"`
	Role  string `json:"role"`
	Token string `json:"token"`
}

func testOperatorsCommands(t *testing.T, d cliDB) {
	db := []string{"--db", d.db}
	ops := func(args ...string) []string { return append(append([]string{"operators"}, args...), db...) }
	var vera, rex operatorOut
	mustRunLethe(t, d, &vera, ops("create", "--name", "vera", "--role", "viewer")...)
	mustRunLethe(t, d, &rex, ops("create", "--name", "rex", "--role", "reviewer")...)
	if vera.Role != "viewer" || !strings.HasPrefix(vera.Token, "lethe_op_") || rex.Token == vera.Token {
		t.Fatalf("create printed %+v, %+v", vera, rex)
	}
	for _, bad := range [][]string{
		ops("create", "--name", "vera", "--role", "viewer"),
		ops("create", "--name", "root", "--role", "superuser"),
		ops("create", "--name", "admin-token", "--role", "admin"),
		ops("disable", "nobody"),
	} {
		if _, err := runLethe(t, d, bad...); err == nil {
			t.Errorf("lethe %v succeeded", bad)
		}
	}
	if out := mustRunLethe(t, d, nil, ops("list")...); strings.Contains(out, vera.Token) || !strings.Contains(out, `"name": "rex"`) {
		t.Errorf("list = %s", out)
	}

	// A manual target keeps the request open (its task waits to be
	// attested) for as long as the test extends it; with no target it
	// would complete at once.
	cfg := filepath.Join(t.TempDir(), "lethe.yaml")
	if err := os.WriteFile(cfg, []byte("admin_token: ${LETHE_ADMIN_TOKEN}\ntargets:\n  - {name: archive, kind: manual, owner: records-office, objects: [letters]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url := startCLIServer(t, d, "--config", cfg)
	req := func(tok string, args ...string) (string, error) {
		return runLethe(t, d, append(append([]string{"requests"}, args...), "--server", url, "--token", tok)...)
	}
	var created struct {
		ID string `json:"id"`
	}
	out, err := req(cliAdminToken, "submit", "--identity", "email:cli-operator@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := jsonUnmarshal(out, &created); err != nil || created.ID == "" {
		t.Fatalf("submit printed %q: %v", out, err)
	}
	if _, err := req(vera.Token, "extend", created.ID, "--reason", "archives", "--days", "10"); err == nil || !strings.Contains(err.Error(), "403 forbidden") {
		t.Errorf("viewer extend: %v; want 403 forbidden", err)
	}
	if out, err := req(rex.Token, "extend", created.ID, "--reason", "archives", "--days", "10"); err != nil || !strings.Contains(out, `"by": "rex"`) {
		t.Errorf("reviewer extend: %v\n%s", err, out)
	}
	if _, err := req(rex.Token, "extend", created.ID, "--reason", "again", "--days", "1"); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("second extend: %v; want 409", err)
	}
	out, err = req(vera.Token, "export", "--csv")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(rows) != 2 || rows[1][0] != created.ID || rows[1][7] == "" || !strings.Contains(rows[1][10], "request.extended operator:rex") {
		t.Errorf("export = %q, %v", out, err)
	}
	if strings.Contains(out, "cli-operator@example.com") {
		t.Error("the export holds the identity")
	}
	mustRunLethe(t, d, nil, ops("disable", "vera")...)
	if _, err := req(vera.Token, "get", created.ID); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("disabled operator: %v; want 401", err)
	}
	var rot operatorOut
	mustRunLethe(t, d, nil, ops("enable", "vera")...)
	mustRunLethe(t, d, &rot, ops("rotate", "vera")...)
	if _, err := req(rot.Token, "get", created.ID); err != nil {
		t.Errorf("rotated token: %v", err)
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
