package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/connector/httprecipe/vendorfake"
)

// TestRecipeTargets erases one subject from a SQL target and two recipe
// targets (kind: http) through a real lethe process: Segment, whose
// regulation stays pending for a status answer before it finishes, and
// Intercom, whose contacts are looked up by email first. The request must
// end completed with the vendors' records gone and a bystander's kept, and
// the signed receipt must list each recipe target with the vendor's own
// reference (the regulation id, the user delete request ids).
func TestRecipeTargets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	shopDSN := "file:" + filepath.Join(dir, "shop.db") + "?_txlock=immediate&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"
	shop := openDB(t, "sqlite", shopDSN)
	run(t, shop,
		`CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL)`,
		`INSERT INTO users (id, email) VALUES (42, 'ada@example.com'), (43, 'bob@example.com')`,
	)

	segment := vendorfake.Segment(t)
	segment.Jobs(1, "done")
	segment.Add(vendorfake.Person{ID: "s1", UserID: subjectUserID}, vendorfake.Person{ID: "s2", UserID: bystanderID})
	intercom := vendorfake.Intercom(t)
	intercom.Add(
		vendorfake.Person{ID: "ic-1", Email: subjectEmail}, vendorfake.Person{ID: "ic-2", Email: subjectEmail},
		vendorfake.Person{ID: "ic-3", Email: bystanderEmail},
	)

	srv := newServer(t, fmt.Sprintf(`db: %q
admin_token: ${LETHE_ADMIN_TOKEN}
workers: {backoff_base: 200ms, backoff_max: 2s, job_timeout: 20s}
targets:
  - name: shop
    kind: sql
    driver: sqlite
    dsn: %q
    tables:
      - {name: users, identities: {email: email, user_id: id}, action: delete}
  - name: segment
    kind: http
    recipe: segment
    base_url: %q
    settings:
      token: ${SEGMENT_TOKEN}
    poll_interval: 200ms
    poll_max: 1s
    allow_hosts: [127.0.0.1]
  - name: intercom
    kind: http
    recipe: intercom
    base_url: %q
    settings:
      token: ${INTERCOM_TOKEN}
    allow_hosts: [127.0.0.1]
`, filepath.Join(dir, "lethe.db"), shopDSN, segment.URL, intercom.URL), randomKey(t))
	srv.env = append(srv.env, "SEGMENT_TOKEN="+vendorfake.Token, "INTERCOM_TOKEN="+vendorfake.Token)
	srv.start()

	var created requestView
	code, err := srv.do(ctx, http.MethodPost, "/v1/deletion-requests", nil, map[string]any{
		"identities": []map[string]string{{"type": "email", "value": subjectEmail}, {"type": "user_id", "value": subjectUserID}},
	}, &created)
	if err != nil || code != http.StatusAccepted || created.ID == "" {
		t.Fatalf("submit: %d, %v, %+v", code, err, created)
	}
	done := waitRequest(t, srv, created.ID, 30*time.Second)
	if done.Status != "completed" {
		t.Fatalf("request %s, want completed; tasks: %+v", done.Status, done.Tasks)
	}

	if n := count(t, shop, `SELECT count(*) FROM users WHERE id = 42`); n != 0 {
		t.Errorf("shop: the subject's row remains")
	}
	if n := count(t, shop, `SELECT count(*) FROM users WHERE id = 43`); n != 1 {
		t.Errorf("shop: the bystander's row is gone")
	}
	if n := segment.Remaining([]string{"s1"}); n != 0 {
		t.Errorf("segment: the subject's data remains")
	}
	if n := segment.Remaining([]string{"s2"}); n != 1 {
		t.Errorf("segment: the bystander's data is gone")
	}
	if n := intercom.Remaining([]string{"ic-1", "ic-2"}); n != 0 {
		t.Errorf("intercom: %d of the subject's contacts remain", n)
	}
	if n := intercom.Remaining([]string{"ic-3"}); n != 1 {
		t.Errorf("intercom: the bystander's contact is gone")
	}
	if n := segment.Hits("GET /regulations/" + segment.JobIDs()[0]); n < 2 {
		t.Errorf("segment: %d status calls, want the pending one and the finished one", n)
	}

	rc := mustCall(t, http.MethodGet, srv.url+"/v1/deletion-requests/"+created.ID+"/receipt", bearer(adminToken), nil, 200, nil)
	keys := mustCall(t, http.MethodGet, srv.url+"/v1/signing-keys", nil, nil, 200, nil)
	checkReceipt(t, rc.body, keys.body, created.ID, map[string]map[string]string{
		"shop":     {"users": "delete 1"},
		"segment":  {"segment_regulations": "delete 1"},
		"intercom": {"intercom_contacts": "delete 2"},
	})
	var doc struct {
		Receipt struct {
			Targets []struct {
				Target string `json:"target"`
				Items  []struct {
					Object    string `json:"object"`
					Reference string `json:"reference"`
				} `json:"items"`
			} `json:"targets"`
		} `json:"receipt"`
	}
	if err := json.Unmarshal(rc.body, &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"segment":  strings.Join(segment.JobIDs(), ","),
		"intercom": strings.Join(intercom.JobIDs(), ","),
	}
	got := map[string]string{}
	for _, tg := range doc.Receipt.Targets {
		for _, it := range tg.Items {
			if it.Reference != "" {
				got[tg.Target] = it.Reference
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || want["segment"] == "" || len(intercom.JobIDs()) != 2 {
		t.Errorf("receipt references %v, want the vendors' ids %v", got, want)
	}
	if strings.Contains(string(rc.body), subjectEmail) {
		t.Errorf("the receipt holds the subject's email")
	}

	// lethe's own offline verifier agrees.
	rcPath, keysPath := filepath.Join(dir, "receipt.json"), filepath.Join(dir, "keys.json")
	if err := os.WriteFile(rcPath, rc.body, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keysPath, keys.body, 0o600); err != nil {
		t.Fatal(err)
	}
	if out := cli(t, nil, "receipt", "verify", rcPath, "--keys-file", keysPath); !strings.HasPrefix(string(out), "ok: receipt of request "+created.ID) {
		t.Errorf("lethe receipt verify: %s", out)
	}
}
