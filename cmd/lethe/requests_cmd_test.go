package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the target the server erases from
)

// requestOut is the part of the native API's request view these tests read.
type requestOut struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Tasks  []struct {
		Target string `json:"target"`
		State  string `json:"state"`
		Report struct {
			Items []struct {
				Object string `json:"object"`
				Rows   int64  `json:"rows"`
			} `json:"items"`
		} `json:"report"`
	} `json:"tasks"`
}

// TestRequestsCommands drives `lethe requests` against a real server on a
// real database. The server erases from a SQLite target that the test can
// lock, which holds every request in "received" (resolve waits for the
// lock) for as long as the test needs one cancelable.
func TestRequestsCommands(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			testRequestsCommands(t, newCLIDB(t, dialect))
		})
	}
}

func testRequestsCommands(t *testing.T, d cliDB) {
	dir := t.TempDir()
	shopPath := filepath.Join(dir, "shop.db")
	shop, err := sql.Open("sqlite", "file:"+shopPath)
	if err != nil {
		t.Fatal(err)
	}
	defer shop.Close()
	ctx := context.Background()
	for _, s := range []string{
		`CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL)`,
		`INSERT INTO users (id, email) VALUES (1, 'ada@example.com'), (2, 'bob@example.com'), (3, 'cy@example.com')`,
	} {
		if _, err := shop.ExecContext(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "lethe.yaml")
	yaml := fmt.Sprintf(`admin_token: ${LETHE_ADMIN_TOKEN}
workers: {backoff_base: 50ms, backoff_max: 500ms}
targets:
  - name: shop
    kind: sql
    driver: sqlite
    dsn: "file:%s?_txlock=immediate&_pragma=busy_timeout(30000)"
    tables:
      - {name: users, identities: {email: email}, action: delete}
`, shopPath)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	url := startCLIServer(t, d, "--config", cfg)
	api := []string{"--server", url, "--token", cliAdminToken}
	requests := func(args ...string) []string { return append(append([]string{"requests"}, args...), api...) }

	// Hold an exclusive lock on the target (rollback journal: readers wait
	// too), so resolve cannot run and new requests stay cancelable.
	lock, err := shop.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	locked := true
	unlock := func() {
		if locked {
			locked = false
			if _, err := lock.ExecContext(ctx, "ROLLBACK"); err != nil {
				t.Error(err)
			}
			lock.Close()
		}
	}
	defer unlock()

	var ada, again, bob, cy requestOut
	mustRunLethe(t, d, &ada, requests("submit", "--identity", "email:Ada@Example.com", "--idempotency-key", "k1", "--external-id", "ticket-1")...)
	if ada.ID == "" || ada.Status != "received" {
		t.Fatalf("submit = %+v; want a received request", ada)
	}
	// A retried submit under the same key answers the first request.
	mustRunLethe(t, d, &again, requests("submit", "--identity", "email:Ada@Example.com", "--idempotency-key", "k1", "--external-id", "ticket-1")...)
	if again.ID != ada.ID {
		t.Errorf("retried submit id %s, want %s", again.ID, ada.ID)
	}
	mustRunLethe(t, d, &bob, requests("submit", "--identity", "email:bob@example.com", "--regulation", "ccpa")...)
	mustRunLethe(t, d, &cy, requests("submit", "--identity", "email:cy@example.com", "--identity", "user_id:3")...)

	var canceled requestOut
	mustRunLethe(t, d, &canceled, requests("cancel", bob.ID)...)
	if canceled.Status != "canceled" {
		t.Errorf("cancel answered status %q, want canceled", canceled.Status)
	}
	unlock()

	// ada and cy complete once the target is free; bob stays canceled.
	for _, id := range []string{ada.ID, cy.ID} {
		deadline := time.Now().Add(60 * time.Second)
		for {
			var got requestOut
			mustRunLethe(t, d, &got, requests("get", id)...)
			if got.Status == "completed" {
				if len(got.Tasks) != 1 || got.Tasks[0].Target != "shop" || got.Tasks[0].State != "done" ||
					len(got.Tasks[0].Report.Items) != 1 || got.Tasks[0].Report.Items[0].Rows != 1 {
					t.Errorf("completed request tasks = %+v; want shop done with 1 row", got.Tasks)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("request still %s after 60s", got.Status)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	var n int
	if err := shop.QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil || n != 1 {
		t.Errorf("users left = %d, %v; want bob's 1", n, err)
	}

	type listPage struct {
		Data []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"data"`
		NextCursor string `json:"next_cursor"`
	}
	var page listPage
	list := func(args ...string) {
		page = listPage{} // an absent next_cursor must not keep the last one
		mustRunLethe(t, d, &page, requests(append([]string{"list"}, args...)...)...)
	}
	list()
	if len(page.Data) != 3 || page.Data[0].ID != cy.ID || page.Data[2].ID != ada.ID {
		t.Errorf("list = %+v; want cy, bob, ada (newest first)", page.Data)
	}
	list("--status", "canceled")
	if len(page.Data) != 1 || page.Data[0].ID != bob.ID {
		t.Errorf("list --status canceled = %+v; want bob", page.Data)
	}
	list("--limit", "2")
	if len(page.Data) != 2 || page.NextCursor == "" {
		t.Fatalf("list --limit 2 = %+v; want 2 and a cursor", page)
	}
	list("--limit", "2", "--cursor", page.NextCursor)
	if len(page.Data) != 1 || page.Data[0].ID != ada.ID || page.NextCursor != "" {
		t.Errorf("second page = %+v; want ada alone", page)
	}

	// A bulk retry of the target is queued (nothing of it has failed).
	var bulk struct {
		ID     string `json:"id"`
		Target string `json:"target"`
	}
	mustRunLethe(t, d, &bulk, append([]string{"tasks", "retry", "--target", "shop", "--failed"}, api...)...)
	if bulk.ID == "" || bulk.Target != "shop" {
		t.Errorf("tasks retry = %+v; want a bulk retry of shop", bulk)
	}

	// Failures exit non-zero with the server's message, and print nothing.
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"cancel after erasure", requests("cancel", ada.ID), "409"},
		{"unknown id", requests("get", "01890a5d-ac96-774b-bcce-b302099a8057"), "404"},
		{"wrong token", []string{"requests", "list", "--server", url, "--token", "not-the-token-at-all"}, "401"},
		{"bad identity type", requests("submit", "--identity", "shoe:42"), "400"},
		{"identity without type", requests("submit", "--identity", "ada@example.com"), "TYPE:VALUE"},
		{"no identity", requests("submit"), "at least one --identity"},
		{"server down", []string{"requests", "list", "--server", "http://127.0.0.1:1", "--token", cliAdminToken}, "call server"},
		{"approve a completed request", requests("approve", ada.ID), "409 conflict"},
		{"retry a completed request", requests("retry", ada.ID), "409 conflict"},
		{"skip without a reason", requests("skip", ada.ID, "--target", "shop"), "--reason is required"},
		{"deny without a reason", requests("deny", ada.ID), "--reason is required"},
		{"deny after erasure", requests("deny", ada.ID, "--reason", "other"), "409 conflict"},
		{"bulk retry without --failed", append([]string{"tasks", "retry", "--target", "shop"}, api...), "--failed is required"},
		{"bulk retry of no target", append([]string{"tasks", "retry", "--target", "nowhere", "--failed"}, api...), "404"},
	} {
		out, err := runLethe(t, d, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v; want one containing %q", c.name, err, c.want)
		}
		if out != "" {
			t.Errorf("%s: printed %q on failure", c.name, out)
		}
	}
}
