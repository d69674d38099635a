package connlimit_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lethe-privacy/lethe/internal/connlimit"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

func TestReached(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "53300", Message: "sorry, too many clients already"}, true},
		{fmt.Errorf("open: %w", &pgconn.PgError{Code: "53300", Message: `too many connections for role "x"`}), true},
		{&mysql.MySQLError{Number: 1040, Message: "Too many connections"}, true},
		{&mysql.MySQLError{Number: 1203, Message: "User x already has more than 'max_user_connections' active connections"}, true},
		{&mysql.MySQLError{Number: 1226, Message: "User 'x' has exceeded the 'max_user_connections' resource (current value: 1)"}, true},
		// An hourly quota: waiting minutes does not fix it.
		{&mysql.MySQLError{Number: 1226, Message: "User 'x' has exceeded the 'max_questions' resource (current value: 10)"}, false},
		{&pgconn.PgError{Code: "28P01"}, false},
		{&pgconn.PgError{Code: "53200"}, false}, // out of memory
		{errors.New("too many clients"), false},
		{nil, false},
	} {
		if got := connlimit.Reached(c.err); got != c.want {
			t.Errorf("Reached(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func logTo(b *testdb.SyncBuffer) *slog.Logger { return slog.New(slog.NewJSONHandler(b, nil)) }

// noSecrets fails the test when s names the role or the DSN.
func noSecrets(t *testing.T, what, s, dsn, user string) {
	t.Helper()
	for _, bad := range []string{user, dsn, "127.0.0.1", "postgres://", "tcp("} {
		if strings.Contains(s, bad) {
			t.Errorf("%s shows %q: %s", what, bad, s)
		}
	}
}

func roleOf(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.User
}

// A connection refused by the role's CONNECTION LIMIT is waited for, and
// opens once a slot frees; the wait is logged without the role or DSN.
func TestWaitOpensWhenASlotFrees(t *testing.T) {
	t.Parallel()
	dsn := testdb.PostgresRole(t, testdb.PostgresDSN(t), 1)
	release := testdb.HoldPostgres(t, dsn, 1)
	var logs testdb.SyncBuffer
	time.AfterFunc(300*time.Millisecond, func() { release(0) })
	calls := 0
	c, err := connlimit.Wait(context.Background(), connlimit.Waiter{What: "test", Log: logTo(&logs)}, func(ctx context.Context) (*pgx.Conn, error) {
		calls++
		return pgx.Connect(ctx, dsn)
	})
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	c.Close(context.Background())
	if calls < 2 {
		t.Errorf("connected after %d attempts; the first should have been refused", calls)
	}
	out := logs.String()
	if !strings.Contains(out, "refuses new connections as full") || !strings.Contains(out, "accepted the connection after waiting") || !strings.Contains(out, "SQLSTATE 53300") {
		t.Errorf("log does not tell the wait:\n%s", out)
	}
	noSecrets(t, "log", out, dsn, roleOf(t, dsn))
}

// A server that stays full gives a clear error after the bound, naming
// neither the role nor the DSN.
func TestWaitGivesUpAfterItsBound(t *testing.T) {
	t.Parallel()
	dsn := testdb.PostgresRole(t, testdb.PostgresDSN(t), 1)
	testdb.HoldPostgres(t, dsn, 1)
	var logs testdb.SyncBuffer
	_, err := connlimit.Wait(context.Background(), connlimit.Waiter{What: "test", Max: 400 * time.Millisecond, Log: logTo(&logs)}, func(ctx context.Context) (*pgx.Conn, error) {
		return pgx.Connect(ctx, dsn)
	})
	var le *connlimit.Error
	if !errors.As(err, &le) {
		t.Fatalf("Wait = %v, want a *connlimit.Error", err)
	}
	if le.Waited < 400*time.Millisecond || le.Code != "SQLSTATE 53300" || !connlimit.Reached(err) {
		t.Errorf("error = %+v, want SQLSTATE 53300 after at least the bound", le)
	}
	if !strings.Contains(err.Error(), "too many connections") {
		t.Errorf("error does not say why: %v", err)
	}
	noSecrets(t, "error", err.Error(), dsn, roleOf(t, dsn))
	out := logs.String()
	if !strings.Contains(out, "stayed full; giving up") {
		t.Errorf("log does not tell the end of the wait:\n%s", out)
	}
	noSecrets(t, "log", out, dsn, roleOf(t, dsn))
}

// A caller's context that ends ends the wait.
func TestWaitEndsWithItsContext(t *testing.T) {
	t.Parallel()
	full := &pgconn.PgError{Code: "53300"}
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := connlimit.Waiter{Log: slog.New(slog.DiscardHandler)}.Do(ctx, func(context.Context) error {
		calls++
		if calls == 3 {
			cancel()
		}
		return full
	})
	if !errors.Is(err, full) || calls != 3 {
		t.Errorf("Do = %v after %d calls; want the refusal after 3", err, calls)
	}
}

// Any other error is returned at once, untouched.
func TestWaitReturnsOtherErrors(t *testing.T) {
	t.Parallel()
	other := &pgconn.PgError{Code: "28P01"}
	calls := 0
	err := connlimit.Waiter{}.Do(context.Background(), func(context.Context) error {
		calls++
		return other
	})
	if err != other || calls != 1 {
		t.Errorf("Do = %v after %d calls; want the error itself after 1", err, calls)
	}
}

// A database/sql pool on MariaDB waits for a user at MAX_USER_CONNECTIONS,
// and gives up after its bound when no slot frees.
func TestOpenDBMariaDB(t *testing.T) {
	t.Parallel()
	dsn := testdb.MariaDBUser(t, testdb.MariaDBDSN(t), 1)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	release := testdb.HoldMariaDB(t, dsn, 1)
	var logs testdb.SyncBuffer

	db, err := connlimit.OpenDB("mysql", dsn, connlimit.Waiter{What: "test", Max: 400 * time.Millisecond, Log: logTo(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.PingContext(context.Background())
	if !connlimit.Reached(err) {
		t.Fatalf("Ping with the user's only connection held = %v, want the limit reached", err)
	}
	noSecrets(t, "error", err.Error(), dsn, cfg.User)

	time.AfterFunc(300*time.Millisecond, func() { release(0) })
	db2, err := connlimit.OpenDB("mysql", dsn, connlimit.Waiter{What: "test", Log: logTo(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if err := db2.PingContext(context.Background()); err != nil {
		t.Fatalf("Ping once a slot frees: %v", err)
	}
	out := logs.String()
	if !strings.Contains(out, "accepted the connection after waiting") || !strings.Contains(out, "MySQL error") {
		t.Errorf("log does not tell the wait:\n%s", out)
	}
	noSecrets(t, "log", out, dsn, cfg.User)
}
