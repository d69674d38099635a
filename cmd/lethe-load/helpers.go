package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

// subcommand runs one of the helper modes that give the load scripts their
// in-run baselines (docs/load.md).
func subcommand(name string, args []string) error {
	switch name {
	case "baseline-server":
		return baselineServer(args)
	case "webhook-server":
		return webhookServer(args)
	case "erase-baseline":
		return eraseBaseline(args)
	case "shop-reset":
		return shopReset(args)
	}
	return fmt.Errorf("unknown mode %q (baseline-server, webhook-server, erase-baseline, shop-reset, or flags for the intake load)", name)
}

// openDB opens a postgres:// URL with pgx or anything else as a SQLite
// file with the pragmas lethe's own SQLite store uses.
func openDB(dsn string) (*sql.DB, string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		db, err := sql.Open("pgx", dsn)
		return db, "postgres", err
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: dsn}).EscapedPath()+"?"+q.Encode())
	if err == nil {
		db.SetMaxOpenConns(4) // lethe's sqlite.DefaultMaxOpenConns
	}
	return db, "sqlite", err
}

// serveUntilSignal serves h on addr until SIGINT or SIGTERM.
func serveUntilSignal(addr string, h http.Handler) error {
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}

// baselineServer is the intake ceiling: the least a server must do for a
// signed S2S deletion request. It checks the API key and the HMAC-SHA256
// of the body exactly as lethe's POST /user_deletion_requests does, then
// inserts one row like lethe's request row (uuid v7 id, keyed subject
// hash, AES-GCM-sealed identities, status, times) into a table of its own
// in the same database, one transaction per request, and answers 201 with
// the id. No rate limit, no duplicate check, no job, no audit event: the
// rest of what lethe does is what the ratio lethe/baseline prices.
func baselineServer(args []string) error {
	fs := flag.NewFlagSet("baseline-server", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:8090", "address")
	dsn := fs.String("db", "", "the lethe database: SQLite file path or postgres:// URL")
	apiKey := fs.String("api-key", "", "X-API-KEY to accept")
	secret := fs.String("secret", "", "shared secret (HMAC-SHA256 key)")
	pool := fs.Int("pool", 0, "connections kept open and idle, like lethe's pool (0: database/sql's default of 2 idle, which reconnects under load)")
	fs.Parse(args) //nolint:errcheck // ExitOnError
	if *dsn == "" || *apiKey == "" || *secret == "" {
		return fmt.Errorf("baseline-server needs -db, -api-key and -secret")
	}
	db, dialect, err := openDB(*dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	if *pool > 0 {
		db.SetMaxOpenConns(*pool)
		db.SetMaxIdleConns(*pool)
	}
	blob := "BYTEA"
	if dialect == "sqlite" {
		blob = "BLOB"
	}
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS load_baseline_requests (id TEXT PRIMARY KEY, client_id TEXT NOT NULL,
		subject_key TEXT NOT NULL, identities ` + blob + ` NOT NULL, status TEXT NOT NULL, received_at BIGINT NOT NULL, due_at BIGINT NOT NULL)`); err != nil {
		return err
	}
	ins := `INSERT INTO load_baseline_requests VALUES ($1, $2, $3, $4, $5, $6, $7)`
	key := sha256.Sum256([]byte("baseline:" + *secret))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /user_deletion_requests", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			http.Error(w, "read", http.StatusBadRequest)
			return
		}
		sig, err := hex.DecodeString(r.Header.Get("Authorization"))
		m := hmac.New(sha256.New, []byte(*secret))
		m.Write(body)
		if err != nil || subtle.ConstantTimeCompare([]byte(r.Header.Get("X-API-KEY")), []byte(*apiKey)) != 1 || !hmac.Equal(sig, m.Sum(nil)) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		var in struct {
			UserID string `json:"user_id"`
		}
		if err := json.Unmarshal(body, &in); err != nil || in.UserID == "" {
			http.Error(w, "user_id is required", http.StatusBadRequest)
			return
		}
		id, err := uuid.NewV7()
		if err != nil {
			http.Error(w, "id", http.StatusInternalServerError)
			return
		}
		h := hmac.New(sha256.New, key[:])
		h.Write([]byte("user_id:" + in.UserID))
		nonce := make([]byte, gcm.NonceSize())
		rand.Read(nonce) //nolint:errcheck // never fails
		ids, _ := json.Marshal([]map[string]string{{"type": "user_id", "value": in.UserID}})
		now := time.Now()
		if _, err := db.ExecContext(r.Context(), ins, id.String(), *apiKey, hex.EncodeToString(h.Sum(nil)),
			gcm.Seal(nonce, nonce, ids, nil), "received", now.UnixMicro(), now.Add(30*24*time.Hour).UnixMicro()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":%q,"status":"received"}`, id.String())
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	return serveUntilSignal(*listen, mux)
}

// webhookServer is a latency-bound erase target: every POST is answered
// {"status":"done"} after -delay, whatever the body (the signature is not
// checked: the target's own cost is not what is measured). GET /stats
// reports calls and the most calls in flight at once.
func webhookServer(args []string) error {
	fs := flag.NewFlagSet("webhook-server", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:8091", "address")
	delay := fs.Duration("delay", 50*time.Millisecond, "how long each call takes")
	fs.Parse(args) //nolint:errcheck // ExitOnError
	var calls, inflight, peak atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) //nolint:errcheck // body unused
		calls.Add(1)
		n := inflight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(*delay)
		inflight.Add(-1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"done","counts":{"sessions":1}}`)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "{\"calls\":%d,\"peak_inflight\":%d}\n", calls.Load(), peak.Load())
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, r *http.Request) { calls.Store(0); peak.Store(0) })
	return serveUntilSignal(*listen, mux)
}

// The shop is the generated benchmark shop of internal/sqle2e
// (ensureBenchShop): user i owns users row i (email user<i>@example.com),
// addresses row i, orders 2i-1 (with the email) and 2i, order_items 4i-3
// to 4i, support ticket i and invoice i.

// shopReset puts users first..first+k-1 back as the generator made them,
// whatever an erasure did to them, so every run erases real rows.
func shopReset(args []string) error {
	fs := flag.NewFlagSet("shop-reset", flag.ExitOnError)
	dsn := fs.String("dsn", "", "postgres:// URL whose search_path is the shop's schema")
	first := fs.Int64("first", 1, "first user id")
	k := fs.Int64("k", 200, "how many users")
	fs.Parse(args) //nolint:errcheck // ExitOnError
	db, _, err := openDB(*dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	a, b := *first, *first+*k-1
	f := func(s string) string {
		r := strings.NewReplacer("{A}", fmt.Sprint(a), "{B}", fmt.Sprint(b))
		return r.Replace(s)
	}
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	for _, st := range []string{
		`DELETE FROM order_items WHERE id BETWEEN 4*{A}-3 AND 4*{B}`,
		`DELETE FROM support_tickets WHERE id BETWEEN {A} AND {B}`,
		`DELETE FROM addresses WHERE id BETWEEN {A} AND {B}`,
		`UPDATE orders SET user_id = NULL WHERE id BETWEEN 2*{A}-1 AND 2*{B}`,
		`DELETE FROM users WHERE id BETWEEN {A} AND {B}`,
		`INSERT INTO users SELECT i, 'user' || i || '@example.com', '+49151' || (10000000 + i), 'cref-' || i, 'Name ' || i, i FROM generate_series({A}, {B}) i`,
		`UPDATE orders SET user_id = (id + 1) / 2, email = CASE WHEN id % 2 = 1 THEN 'user' || (id + 1) / 2 || '@example.com' END, shipping_name = 'Ship'
			WHERE id BETWEEN 2*{A}-1 AND 2*{B}`,
		`INSERT INTO addresses SELECT i, i, i || ' Main St', i FROM generate_series({A}, {B}) i`,
		`INSERT INTO order_items SELECT i, (i + 1) / 2, 'sku', 1, (i + 3) / 4 FROM generate_series(4*{A}-3, 4*{B}) i`,
		`INSERT INTO support_tickets SELECT i, 'user' || i || '@example.com', NULL, 'help', i FROM generate_series({A}, {B}) i`,
	} {
		if _, err := tx.Exec(f(st)); err != nil {
			return fmt.Errorf("%s: %w", f(st), err)
		}
	}
	return tx.Commit()
}

// eraseBaseline erases users first..first+k-1 of the shop with
// hand-written SQL, -c at a time: per subject one transaction that finds
// the user by email (what lethe's resolve does) and runs the same set-based
// deletes and pseudonymisation as BenchmarkErase's handErase, so the end
// state is lethe's (checked by counting the subjects' remaining rows).
func eraseBaseline(args []string) error {
	fs := flag.NewFlagSet("erase-baseline", flag.ExitOnError)
	dsn := fs.String("dsn", "", "postgres:// URL whose search_path is the shop's schema")
	first := fs.Int("first", 1, "first user id")
	k := fs.Int("k", 200, "how many subjects")
	c := fs.Int("c", 1, "concurrent erasers (connections)")
	hashKey := fs.String("hash-key", "0123456789abcdef-e2e-hash-key", "the data map's hash_key (redact_email)")
	fs.Parse(args) //nolint:errcheck // ExitOnError
	db, _, err := openDB(*dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(*c)
	db.SetMaxIdleConns(*c)
	ctx := context.Background()
	lat := make([]time.Duration, *k)
	var (
		next     atomic.Int64
		mu       sync.Mutex
		firstErr error
	)
	began := time.Now()
	var wg sync.WaitGroup
	for range *c {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= *k {
					return
				}
				t0 := time.Now()
				err := handErase(ctx, db, fmt.Sprintf("user%d@example.com", *first+i), *hashKey)
				lat[i] = time.Since(t0)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(began)
	if firstErr != nil {
		return firstErr
	}
	var left int
	a, b := *first, *first+*k-1
	if err := db.QueryRow(`SELECT (SELECT count(*) FROM users WHERE id BETWEEN $1 AND $2) +
		(SELECT count(*) FROM order_items WHERE id BETWEEN 4*$1-3 AND 4*$2) +
		(SELECT count(*) FROM orders WHERE id BETWEEN 2*$1-1 AND 2*$2 AND user_id IS NOT NULL)`, a, b).Scan(&left); err != nil {
		return err
	}
	if left != 0 {
		return fmt.Errorf("after the hand-written erasure %d of the subjects' rows are left", left)
	}
	slices.Sort(lat)
	sps := float64(*k) / took.Seconds()
	fmt.Printf("hand-written SQL, %d at a time: %d subjects in %.2fs, %.1f subjects/s; per subject p50 %s p99 %s\n",
		*c, *k, took.Seconds(), sps, ms(pct(lat, 50)), ms(pct(lat, 99)))
	fmt.Printf("RESULT mode=hand c=%d k=%d wall_s=%.2f subjects_s=%.1f p50_ms=%.1f p99_ms=%.1f\n",
		*c, *k, took.Seconds(), sps, msf(pct(lat, 50)), msf(pct(lat, 99)))
	return nil
}

func handErase(ctx context.Context, db *sql.DB, email, hashKey string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	var uid int64
	if err := tx.QueryRowContext(ctx, `SELECT id FROM users WHERE email = $1`, email).Scan(&uid); err != nil {
		return fmt.Errorf("find %s: %w", email, err)
	}
	h := hmac.New(sha256.New, []byte(hashKey))
	h.Write([]byte(email))
	redacted := "erased+" + hex.EncodeToString(h.Sum(nil))[:16] + "@invalid"
	for _, st := range []struct {
		sql  string
		args []any
	}{
		{`DELETE FROM order_items WHERE order_id IN (SELECT id FROM orders WHERE user_id = $1 OR email = $2)`, []any{uid, email}},
		{`DELETE FROM support_tickets WHERE order_id IN (SELECT id FROM orders WHERE user_id = $1 OR email = $2)`, []any{uid, email}},
		{`DELETE FROM support_tickets WHERE email = $1`, []any{email}},
		{`UPDATE orders SET user_id = NULL, email = $3, shipping_name = NULL WHERE user_id = $1 OR email = $2`, []any{uid, email, redacted}},
		{`DELETE FROM addresses WHERE user_id = $1`, []any{uid}},
		{`DELETE FROM users WHERE id = $1 OR email = $2`, []any{uid, email}},
	} {
		if _, err := tx.ExecContext(ctx, st.sql, st.args...); err != nil {
			return err
		}
	}
	var kept int64
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM invoices WHERE user_id = $1`, uid).Scan(&kept); err != nil {
		return err
	}
	return tx.Commit()
}
