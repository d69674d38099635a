package pipeline

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector/sqlconn"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/store/sqlite"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// BenchmarkDrain measures what scripts/load's burst measures, in-process:
// b.N requests stored with their first jobs (as intake does), then drained
// by the real pipeline (default workers, receipts signed) through the real
// SQL connector on a SQLite file holding one users row per subject. It
// reports the process's CPU time per request (user + system, from
// getrusage: the store's SQLite runs in-process, PostgreSQL's server does
// not) and requests per second. Profile with -cpuprofile.
//
//	go test -run '^$' -bench Drain -benchtime 300x -cpuprofile cpu.out ./internal/pipeline
func BenchmarkDrain(b *testing.B) {
	for _, dialect := range testdb.Dialects {
		for _, ci := range []bool{false, true} {
			name := dialect + "/scan"
			if ci {
				name = dialect + "/ci-index"
			}
			b.Run(name, func(b *testing.B) { benchDrain(b, dialect, ci) })
		}
	}
}

// benchDrain drains b.N requests on a store of dialect; ci gives the
// target's email column the lower(trim(email)) index its case-insensitive
// match can use (without it, every lookup scans the table).
func benchDrain(b *testing.B, dialect string, ci bool) {
	ctx := context.Background()
	st := testdb.OpenStore(b, dialect)
	if err := Migrate(ctx, st); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, b.N)
	emails := make([]string, b.N)
	for i := range emails {
		emails[i] = fmt.Sprintf("subject%d@example.com", i)
	}
	shop := benchShop(b, emails, ci)
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{FetchPollInterval: 20 * time.Millisecond, Signer: audit.NewSigner(priv)}
	p, err := New(cfg, st, []Target{shop}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i, e := range emails {
		ids[i] = submit(b, st, p, lethe.Identity{Type: lethe.IdentityEmail, Value: e})
	}

	// SQLite: statements prepared during the drain (the store's cache
	// should leave next to none per request).
	stats, _ := st.(interface {
		StatementCacheStats() *sqlite.StatementCacheStats
	})
	var prepared0 int64
	if stats != nil {
		prepared0 = stats.StatementCacheStats().Prepared.Load() + stats.StatementCacheStats().Uncached.Load()
	}
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := p.Stop(sctx); err != nil {
			b.Errorf("stop: %v", err)
		}
	}()
	testdb.PerRequest(b, func() { // the pipeline's start included, as a burst meets it
		if err := p.Start(ctx); err != nil {
			b.Fatal(err)
		}
		for _, id := range ids {
			for {
				r, err := st.GetRequest(ctx, id, store.Scope{All: true})
				if err != nil {
					b.Fatal(err)
				}
				if r.Status.Terminal() {
					if r.Status != lethe.StatusCompleted {
						b.Fatalf("request ended %s", r.Status)
					}
					break
				}
				time.Sleep(50 * time.Millisecond) // rarely: the polls are in the CPU measured
			}
		}
	})
	if stats != nil {
		prepared := stats.StatementCacheStats().Prepared.Load() + stats.StatementCacheStats().Uncached.Load() - prepared0
		b.ReportMetric(float64(prepared)/float64(b.N), "prepares/req")
	}
}

// benchShop is scripts/load's target: a SQLite file with one users row per
// subject, reached through the real SQL connector.
// Like scripts/load's (at its default LOAD_STEADY), the table also holds
// 4,000 rows of other subjects.
func benchShop(b *testing.B, emails []string, ci bool) Target {
	path := filepath.Join(b.TempDir(), "shop.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, uid TEXT)`); err != nil {
		b.Fatal(err)
	}
	index := []string{`CREATE INDEX users_email ON users (email)`, `CREATE INDEX users_uid ON users (uid)`}
	if ci {
		index = append(index, `CREATE INDEX users_email_ci ON users (lower(trim(email)))`)
	}
	for _, q := range index {
		if _, err := db.Exec(q); err != nil {
			b.Fatal(err)
		}
	}
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	for i, e := range emails {
		if _, err := tx.Exec(`INSERT INTO users (email, uid) VALUES (?, ?)`, e, fmt.Sprint("u", i)); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 4000 {
		if _, err := tx.Exec(`INSERT INTO users (email, uid) VALUES (?, ?)`, fmt.Sprintf("other%d@example.com", i), fmt.Sprint("x", i)); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	doc := "targets:\n  - name: shop\n    kind: sql\n    driver: sqlite\n    dsn: \"file:" + path +
		"?_txlock=immediate&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)\"\n    tables:\n" +
		"      - {name: users, identities: {email: email, user_id: uid}, action: delete}\n"
	cfg, err := config.Parse([]byte(doc), nil)
	if err != nil {
		b.Fatal(err)
	}
	c, err := sqlconn.New(context.Background(), cfg.ConnectorTargets()[0])
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return Target{Name: "shop", Conn: c}
}
