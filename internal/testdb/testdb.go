// Package testdb gives tests their own real database: a fresh SQLite file,
// or a fresh schema on the PostgreSQL / MariaDB / Redis named by the
// LETHE_TEST_* environment variables. Without the variable a test is
// skipped with a message saying how to enable it; .ci/run sets them all and
// LETHE_TEST_REQUIRE_SERVICES=1 turns a missing one into a failure.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables naming the test services.
const (
	EnvPostgres = "LETHE_TEST_POSTGRES" // e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable
	EnvMariaDB  = "LETHE_TEST_MARIADB"  // e.g. root@tcp(127.0.0.1:3306)/test
	EnvRedis    = "LETHE_TEST_REDIS"    // e.g. redis://127.0.0.1:6379/0
	EnvRequire  = "LETHE_TEST_REQUIRE_SERVICES"
)

// Service returns the value of env, skipping the test (or failing it when
// services are required) if it is unset.
func Service(tb testing.TB, env string) string {
	tb.Helper()
	v := os.Getenv(env)
	if v == "" {
		if os.Getenv(EnvRequire) != "" {
			tb.Fatalf("%s is not set but %s requires every test service", env, EnvRequire)
		}
		tb.Skipf("set %s to run this test against a real server (.ci/run sets it)", env)
	}
	return v
}

// SQLitePath returns the path of a new SQLite database file in a temporary
// directory removed after the test.
func SQLitePath(tb testing.TB) string {
	tb.Helper()
	return filepath.Join(tb.TempDir(), "lethe.db")
}

// PostgresDSN creates an empty schema on the test PostgreSQL and returns a
// DSN whose connections use it (search_path), so tests in parallel never
// see each other's tables. The schema is dropped after the test.
func PostgresDSN(tb testing.TB) string {
	tb.Helper()
	base := Service(tb, EnvPostgres)
	schema := "t_" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("connect to %s: %v", EnvPostgres, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			tb.Logf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Logf("drop schema %s: %v", schema, err)
		}
	})
	return WithSearchPath(tb, base, schema)
}

// WithSearchPath returns dsn with its connections' search_path set to schema.
func WithSearchPath(tb testing.TB, dsn, schema string) string {
	tb.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatalf("parse %s: %v", EnvPostgres, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
