package testdb

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

// PostgresRole creates a login role allowed at most limit connections
// (CONNECTION LIMIT), with every right on the schema of dsn (a
// PostgresDSN) and on the tables and sequences already in it, and returns dsn with that role as its user: a way to make
// the server "full" for one test without touching anyone else's
// connections. The role's sessions are ended and the role and everything
// it owns dropped after the test, even when it fails.
func PostgresRole(tb testing.TB, dsn string, limit int) string {
	tb.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatalf("parse %s: %v", EnvPostgres, err)
	}
	schema := u.Query().Get("search_path")
	if schema == "" {
		tb.Fatal("PostgresRole wants a DSN from PostgresDSN (with a search_path)")
	}
	role := "lethe_test_role_" + randomHex(6)
	admin := func(stmts ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgConnect(ctx, dsn)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		for _, s := range stmts {
			if _, err := c.Exec(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	}
	// The names are ours (hex), so building the statements is safe.
	if err := admin(
		fmt.Sprintf("CREATE ROLE %s LOGIN CONNECTION LIMIT %d", role, limit),
		fmt.Sprintf("GRANT ALL ON SCHEMA %s TO %s", schema, role),
		fmt.Sprintf("GRANT ALL ON ALL TABLES IN SCHEMA %s TO %s", schema, role),
		fmt.Sprintf("GRANT ALL ON ALL SEQUENCES IN SCHEMA %s TO %s", schema, role),
	); err != nil {
		tb.Fatalf("create role: %v", err)
	}
	tb.Cleanup(func() {
		if err := admin(
			// NOLOGIN first, so no session of it starts while it is dropped.
			"ALTER ROLE "+role+" NOLOGIN",
			"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '"+role+"'",
			"DROP OWNED BY "+role,
			"DROP ROLE "+role,
		); err != nil {
			tb.Errorf("drop role %s: %v", role, err)
		}
	})
	u.User = url.User(role)
	return u.String()
}

// HoldPostgres opens n connections to dsn and keeps them until release(i)
// closes the i-th or the test ends.
func HoldPostgres(tb testing.TB, dsn string, n int) (release func(i int)) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conns := make([]*pgx.Conn, n)
	for i := range conns {
		c, err := pgConnect(ctx, dsn)
		if err != nil {
			tb.Fatalf("hold connection %d: %v", i, err)
		}
		conns[i] = c
	}
	closed := make([]bool, n)
	release = func(i int) {
		if !closed[i] {
			closed[i] = true
			conns[i].Close(context.Background())
		}
	}
	tb.Cleanup(func() {
		for i := range conns {
			release(i)
		}
	})
	return release
}

// MariaDBUser creates a user allowed at most limit connections
// (MAX_USER_CONNECTIONS), with every right on the database of dsn (a
// MariaDBDSN), and returns dsn with that user. The user is dropped after
// the test, even when it fails.
func MariaDBUser(tb testing.TB, dsn string, limit int) string {
	tb.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		tb.Fatalf("parse %s: %v", EnvMariaDB, err)
	}
	user := "lethe_test_" + randomHex(6)
	admin := func(stmts ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			return err
		}
		defer db.Close()
		db.SetMaxOpenConns(1)
		for _, s := range stmts {
			if _, err := whileFull(ctx, func(ctx context.Context) (sql.Result, error) { return db.ExecContext(ctx, s) }); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	}
	// The names are ours (hex), so building the statements is safe.
	if err := admin(
		fmt.Sprintf("CREATE USER '%s'@'%%' WITH MAX_USER_CONNECTIONS %d", user, limit),
		fmt.Sprintf("GRANT ALL ON `%s`.* TO '%s'@'%%'", cfg.DBName, user),
	); err != nil {
		tb.Fatalf("create user: %v", err)
	}
	tb.Cleanup(func() {
		if err := admin(fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", user)); err != nil {
			tb.Errorf("drop user %s: %v", user, err)
		}
	})
	cfg.User, cfg.Passwd = user, ""
	return cfg.FormatDSN()
}

// HoldMariaDB opens n connections to dsn and keeps them until release(i)
// closes the i-th or the test ends.
func HoldMariaDB(tb testing.TB, dsn string, n int) (release func(i int)) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db := OpenDB(tb, "mysql", dsn)
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(0) // a released connection closes
	conns := make([]*sql.Conn, n)
	for i := range conns {
		c, err := db.Conn(ctx)
		if err != nil {
			tb.Fatalf("hold connection %d: %v", i, err)
		}
		conns[i] = c
	}
	closed := make([]bool, n)
	release = func(i int) {
		if !closed[i] {
			closed[i] = true
			conns[i].Close()
		}
	}
	tb.Cleanup(func() {
		for i := range conns {
			release(i)
		}
	})
	return release
}
