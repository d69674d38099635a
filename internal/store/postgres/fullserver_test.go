package postgres_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lethe-privacy/lethe/internal/connlimit"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/store/postgres"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

func userOf(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.User
}

// Opening and migrating the store on a role at its CONNECTION LIMIT waits
// for slots instead of failing, and so does a statement that needs a new
// connection of the pool later.
func TestOpenWaitsWhileServerFull(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testdb.PostgresRole(t, testdb.PostgresDSN(t), 2)
	release := testdb.HoldPostgres(t, dsn, 2)
	var logs testdb.SyncBuffer
	time.AfterFunc(300*time.Millisecond, func() { release(0) })
	time.AfterFunc(600*time.Millisecond, func() { release(1) })

	s := testdb.OpenPostgres(t, dsn, postgres.Options{MaxConns: 2, Log: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if out := logs.String(); strings.Count(out, "refuses new connections as full") < 1 || !strings.Contains(out, `"what":"postgres store"`) {
		t.Fatalf("the open did not wait for the full server (the test proves nothing):\n%s", out)
	}

	// Later: one slot free, and the pool holds a transaction on it. A
	// statement beside it needs a second connection, which the server
	// refuses until another holder lets go.
	s.Pool().Reset()
	release = testdb.HoldPostgres(t, dsn, 1)
	before := strings.Count(logs.String(), "refuses new connections as full")
	err := s.InTx(ctx, func(tx store.Tx) error {
		time.AfterFunc(300*time.Millisecond, func() { release(0) })
		return s.Ready(ctx)
	})
	if err != nil {
		t.Fatalf("a statement beside a transaction on a full server: %v", err)
	}
	if after := strings.Count(logs.String(), "refuses new connections as full"); after <= before {
		t.Errorf("the second connection did not wait (the test proves nothing):\n%s", logs.String())
	}
	out := logs.String()
	for _, bad := range []string{userOf(t, dsn), "postgres://", "127.0.0.1"} {
		if strings.Contains(out, bad) {
			t.Errorf("log shows %q:\n%s", bad, out)
		}
	}
}

// A server that stays full fails the open after FullServerWait, with an
// error that says so and names neither the role nor the DSN.
func TestOpenGivesUpWhenServerStaysFull(t *testing.T) {
	t.Parallel()
	dsn := testdb.PostgresRole(t, testdb.PostgresDSN(t), 1)
	testdb.HoldPostgres(t, dsn, 1)
	var logs testdb.SyncBuffer
	s, err := postgres.Open(context.Background(), dsn, postgres.Options{
		Keyring: testdb.Keyring(t), FullServerWait: 500 * time.Millisecond, Log: slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	if err == nil {
		s.Close()
		t.Fatal("Open on a server that stays full succeeded")
	}
	var le *connlimit.Error
	if !errors.As(err, &le) || le.Waited < 500*time.Millisecond {
		t.Fatalf("Open = %v, want a connlimit.Error after at least 500ms", err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "open postgres: ") || !strings.Contains(msg, "too many connections, SQLSTATE 53300") {
		t.Errorf("error does not say what happened: %s", msg)
	}
	for _, what := range []string{msg, logs.String()} {
		for _, bad := range []string{userOf(t, dsn), "postgres://", "127.0.0.1"} {
			if strings.Contains(what, bad) {
				t.Errorf("shows %q: %s", bad, what)
			}
		}
	}
}
