package pipeline

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/sqlconn"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/http/auth"
	"github.com/lethe-privacy/lethe/internal/httpapi"
	"github.com/lethe-privacy/lethe/internal/intake"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// openStoreAt is openStore that also returns where the database lives: the
// SQLite file's path, or the PostgreSQL DSN.
func openStoreAt(t *testing.T, dialect string) (store.Store, string) {
	t.Helper()
	st, where := testdb.OpenStoreAt(t, dialect)
	migratePipeline(t, st)
	return st, where
}

// shopTarget is a SQLite database of the subject's rows, reached through
// the real SQL connector.
func shopTarget(t *testing.T, email, phone string) Target {
	t.Helper()
	path := filepath.Join(t.TempDir(), "shop.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, phone TEXT)`,
		`CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users (id), total INTEGER)`,
		`CREATE TABLE invoices (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users (id))`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`INSERT INTO users (id, email, phone) VALUES (1, ?, ?), (2, 'other@example.org', '+15550000000')`, email, phone); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO orders (user_id, total) VALUES (1, 10), (1, 20), (2, 30)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO invoices (user_id) VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	return sqliteTarget(t, path,
		"      - {name: users, identities: {email: email, phone: phone}, action: delete}\n"+
			"      - {name: orders, references: {column: user_id, table: users}, action: delete}\n"+
			"      - {name: invoices, references: {column: user_id, table: users}, action: retain, reason: \"tax law: 10 years\"}\n")
}

// sqliteTarget is the target "shop": the real SQL connector on the SQLite
// database at dsn, with the given tables of a data map.
func sqliteTarget(t *testing.T, dsn, tables string) Target {
	t.Helper()
	doc := "targets:\n  - name: shop\n    kind: sql\n    driver: sqlite\n    dsn: \"" + dsn + "\"\n    tables:\n" + tables
	cfg, err := config.Parse([]byte(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := sqlconn.New(context.Background(), cfg.ConnectorTargets()[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return Target{Name: "shop", Conn: c}
}

// TestServiceForgets runs requests through the real stack (HTTP API,
// intake, pipeline, SQL connector on SQLite) and proves lethe keeps no
// identity value: not in any log line, not anywhere in its database once
// the requests have ended (completed, and canceled), and that retention
// purges what it must while receipts keep verifying.
func TestServiceForgets(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st, where := openStoreAt(t, dialect)
			kr := testdb.Keyring(t)
			local := fmt.Sprintf("zq%x", rand.Uint64())
			email := local + "@forget.example"
			phone := fmt.Sprintf("+49151%08d", rand.IntN(1e8)) // 0151: a German mobile range, always valid
			email2 := fmt.Sprintf("zc%x@forget.example", rand.Uint64())
			secrets := []string{email, local, phone, strings.TrimPrefix(phone, "+"), email2, strings.Split(email2, "@")[0]}

			logs := &testdb.SyncBuffer{}
			log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			signer, _, err := audit.LoadSigner(ctx, st, kr, "", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			cfg := testConfig()
			cfg.Signer = signer
			p, err := New(cfg, st, []Target{shopTarget(t, email, phone)}, log, nil)
			if err != nil {
				t.Fatal(err)
			}
			in := intake.New(st, p, kr, intake.Config{Terminator: p})
			api := httpapi.New(httpapi.Options{
				Intake: in, Store: st, Logger: log,
				Auth: []auth.Authenticator{auth.AdminToken("admin-token-for-tests-0123456789")},
			}).Handler()
			do := func(method, path, body string) (int, []byte) {
				t.Helper()
				r := httptest.NewRequest(method, path, strings.NewReader(body))
				r.Header.Set("Authorization", "Bearer admin-token-for-tests-0123456789")
				if body != "" {
					r.Header.Set("Content-Type", "application/json")
				}
				w := httptest.NewRecorder()
				api.ServeHTTP(w, r)
				return w.Code, w.Body.Bytes()
			}
			create := func(ids string) string {
				t.Helper()
				code, body := do("POST", "/v1/deletion-requests", `{"identities":[`+ids+`]}`)
				if code != http.StatusAccepted {
					t.Fatalf("create: %d %s", code, body)
				}
				var v struct{ ID string }
				if err := json.Unmarshal(body, &v); err != nil {
					t.Fatal(err)
				}
				return v.ID
			}

			// A request canceled before the pipeline runs.
			canceled := create(`{"type":"email","value":"` + strings.ToUpper(email2) + `"}`)
			if code, body := do("GET", "/v1/deletion-requests/"+canceled+"/receipt", ""); code != http.StatusNotFound {
				t.Errorf("receipt of an open request: %d %s", code, body)
			}
			sizeOpen := requestBytes(t, st, dialect, canceled)
			if code, body := do("POST", "/v1/deletion-requests/"+canceled+"/cancel", ""); code != http.StatusOK {
				t.Fatalf("cancel: %d %s", code, body)
			}

			// A request carried out.
			id := create(`{"type":"email","value":" ` + email + `"},{"type":"phone","value":"` + phone + `"}`)
			sizeOpen2 := requestBytes(t, st, dialect, id)
			if err := p.Start(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				p.Stop(sctx)
			})
			r := waitDone(t, st, id, lethe.StatusCompleted)
			waitIdle(t, p)
			if got := taskOf(t, r, "shop").Report; got.Total() != 4 {
				t.Errorf("report = %+v, want 1 user + 2 orders deleted, 1 invoice retained", got)
			}

			// Receipts: served, and verifying with the published keys.
			code, keysBody := do("GET", "/v1/signing-keys", "")
			if code != http.StatusOK {
				t.Fatalf("signing keys: %d %s", code, keysBody)
			}
			var set struct{ Keys []audit.PublicKey }
			if err := json.Unmarshal(keysBody, &set); err != nil || len(set.Keys) != 1 {
				t.Fatalf("signing keys: %s %v", keysBody, err)
			}
			pub, err := audit.ParsePublicKey(set.Keys[0].PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			keys := map[string]ed25519.PublicKey{audit.KeyID(pub): pub}
			for want, rid := range map[lethe.Status]string{lethe.StatusCompleted: id, lethe.StatusCanceled: canceled} {
				code, doc := do("GET", "/v1/deletion-requests/"+rid+"/receipt", "")
				if code != http.StatusOK {
					t.Fatalf("receipt: %d %s", code, doc)
				}
				rc, err := audit.Verify(doc, keys)
				if err != nil {
					t.Fatalf("receipt does not verify: %v", err)
				}
				if rc.Status != want || rc.RequestID != rid || len(rc.Identities) == 0 {
					t.Errorf("receipt = %+v", rc)
				}
				if want == lethe.StatusCompleted && (len(rc.Retained) != 1 || rc.Retained[0].Reason != "tax law: 10 years") {
					t.Errorf("receipt retained = %+v", rc.Retained)
				}
				ids, err := st.RequestIdentities(ctx, rid)
				if err != nil || len(ids) != 0 {
					t.Errorf("identities of closed request %s: %d left, %v", rid, len(ids), err)
				}
			}
			sizeClosed := requestBytes(t, st, dialect, id)
			sizeClosedCanceled := requestBytes(t, st, dialect, canceled)

			// Nothing in the logs, nothing in the database.
			if !strings.Contains(logs.String(), "request finished") {
				t.Errorf("log lacks the pipeline's lines:\n%s", logs.String())
			}
			for i, line := range strings.Split(logs.String(), "\n") {
				for _, s := range secrets {
					if strings.Contains(strings.ToLower(line), strings.ToLower(s)) {
						t.Errorf("log line %d holds an identity value (%d chars): %s", i, len(s), line)
					}
				}
			}
			raw := rawDatabase(t, st, dialect, where)
			if len(raw) < 1000 || !bytes.Contains(raw, []byte(id)) {
				t.Fatalf("raw database dump looks empty (%d bytes)", len(raw))
			}
			for _, s := range secrets {
				if bytes.Contains(bytes.ToLower(raw), bytes.ToLower([]byte(s))) {
					t.Errorf("database holds an identity value (%d chars) after the requests ended", len(s))
				}
			}

			// Retention: details first (404, receipt kept), then the proof.
			p.cfg.Retention = &Retention{RequestDetails: 0, Legal: time.Hour}
			if err := p.purge(ctx); err != nil {
				t.Fatal(err)
			}
			if code, body := do("GET", "/v1/deletion-requests/"+id, ""); code != http.StatusNotFound {
				t.Errorf("purged request: %d %s", code, body)
			}
			if code, _ := do("GET", "/v1/deletion-requests/"+id+"/receipt", ""); code != http.StatusOK {
				t.Errorf("receipt after the details purge: %d", code)
			}
			if rep, err := audit.VerifyAll(ctx, st, keys); err != nil || len(rep.Problems) != 0 || rep.Chains != 2 {
				t.Errorf("audit after the details purge: %+v %v", rep, err)
			}
			if n := auditTypes(t, st, id)["request.purged"]; n != 1 {
				t.Errorf("request.purged events = %d", n)
			}
			sizePurged := requestBytes(t, st, dialect, id)
			p.cfg.Retention = &Retention{RequestDetails: 0, Legal: 0}
			if err := p.purge(ctx); err != nil {
				t.Fatal(err)
			}
			if code, _ := do("GET", "/v1/deletion-requests/"+id+"/receipt", ""); code != http.StatusNotFound {
				t.Errorf("receipt after the legal purge: %d", code)
			}
			sizeGone := requestBytes(t, st, dialect, id)
			if sizeGone.total() != 0 {
				t.Errorf("bytes left after the legal purge: %v", sizeGone)
			}
			t.Logf("%s, bytes stored per request (river_job rows hold ids only; River deletes completed jobs after 24h):\n"+
				"  canceled:  open %v\n             closed %v\n"+
				"  completed: open %v\n             closed %v\n             details purged %v\n             legal purge %v",
				dialect, sizeOpen, sizeClosedCanceled, sizeOpen2, sizeClosed, sizePurged, sizeGone)
		})
	}
}

// requestBytes sums what lethe stores about one request in its own tables
// and River's: on SQLite the length of every column value (8 per integer),
// on PostgreSQL pg_column_size of every row.
func requestBytes(t *testing.T, st store.Store, dialect, id string) sizes {
	t.Helper()
	ctx := context.Background()
	queries := []string{
		`SELECT * FROM requests WHERE id = ?`,
		`SELECT * FROM request_identities WHERE request_id = ?`,
		`SELECT * FROM tasks WHERE request_id = ?`,
		`SELECT * FROM audit_events WHERE request_id = ?`,
		`SELECT * FROM receipts WHERE request_id = ?`,
	}
	out := sizes{}
	switch db := st.Driver().(type) {
	case *sql.DB:
		for _, q := range queries {
			var total int64
			rows, err := db.QueryContext(ctx, q, id)
			if err != nil {
				t.Fatal(err)
			}
			_, all := testdb.ScanRows(t, rows)
			for _, vals := range all {
				for _, v := range vals {
					switch v := v.(type) {
					case string:
						total += int64(len(v))
					case []byte:
						total += int64(len(v))
					case nil:
					default:
						total += 8
					}
				}
			}
			out[strings.Fields(q)[3]] = total
		}
		var river int64
		if err := db.QueryRowContext(ctx, `SELECT coalesce(sum(length(args) + length(kind) + length(CAST(metadata AS BLOB)) + 80), 0)
			FROM river_job WHERE CAST(args AS TEXT) LIKE '%' || ? || '%'`, id).Scan(&river); err != nil {
			t.Fatal(err)
		}
		out["river_job"] = river
	case *pgxpool.Pool:
		queries = append(queries, `SELECT * FROM river_job WHERE args::text LIKE '%' || ? || '%'`)
		for _, q := range queries {
			table := strings.Fields(q)[3]
			q = strings.Replace(strings.Replace(q, "SELECT * FROM", "SELECT coalesce(sum(pg_column_size(x.*)), 0) FROM", 1), " WHERE", " x WHERE", 1)
			q = strings.Replace(q, "?", "$1", 1)
			var n int64
			if err := db.QueryRow(ctx, q, id).Scan(&n); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			out[table] = n
		}
	}
	return out
}

// sizes is bytes by table.
type sizes map[string]int64

// total is lethe's own bytes, River's job rows left out.
func (s sizes) total() int64 {
	var n int64
	for table, b := range s {
		if table != "river_job" {
			n += b
		}
	}
	return n
}

func (s sizes) String() string {
	return fmt.Sprintf("total %d (requests %d, identities %d, tasks %d, audit %d, receipt %d; river_job %d)",
		s.total(), s["requests"], s["request_identities"], s["tasks"], s["audit_events"], s["receipts"], s["river_job"])
}

// rawDatabase returns everything lethe's database holds: on SQLite the
// bytes of the database file, its WAL and shared memory; on PostgreSQL the
// text of every row of every table of the schema (River's too).
func rawDatabase(t *testing.T, st store.Store, dialect, where string) []byte {
	t.Helper()
	ctx := context.Background()
	var out bytes.Buffer
	switch db := st.Driver().(type) {
	case *sql.DB:
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			b, err := os.ReadFile(where + suffix)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			out.Write(b)
		}
	case *pgxpool.Pool:
		rows, err := db.Query(ctx, `SELECT table_name FROM information_schema.tables
			WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		var tables []string
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				t.Fatal(err)
			}
			tables = append(tables, name)
		}
		rows.Close()
		if !containsString(tables, "river_job") || !containsString(tables, "request_identities") {
			t.Fatalf("schema tables = %v", tables)
		}
		for _, table := range tables {
			rows, err := db.Query(ctx, `SELECT x::text FROM "`+table+`" x`)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var s string
				if err := rows.Scan(&s); err != nil {
					t.Fatal(err)
				}
				out.WriteString(table + " " + s + "\n")
			}
			rows.Close()
		}
	}
	return out.Bytes()
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

var _ connector.Connector = (*sqlconn.Connector)(nil)
