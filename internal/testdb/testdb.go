// Package testdb gives tests their own real database: a fresh SQLite file,
// or a fresh schema on the PostgreSQL / MariaDB / Redis named by the
// LETHE_TEST_* environment variables. Without the variable, or when the
// service does not answer at it, a test is skipped with a message saying how
// to enable it; .ci/run sets them all and LETHE_TEST_REQUIRE_SERVICES=1
// turns a missing one into a failure.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
)

// Environment variables naming the test services.
const (
	EnvPostgres = "LETHE_TEST_POSTGRES" // e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable
	EnvMariaDB  = "LETHE_TEST_MARIADB"  // e.g. root@tcp(127.0.0.1:3306)/test
	EnvRedis    = "LETHE_TEST_REDIS"    // e.g. redis://127.0.0.1:6379/0
	EnvRequire  = "LETHE_TEST_REQUIRE_SERVICES"
)

// Service returns the address of the test service named by env, skipping
// the test when the variable is unset or the service does not answer there,
// or failing it when LETHE_TEST_REQUIRE_SERVICES=1 (CI) requires every
// service. Every test that needs a service comes through here, so the rule
// is the same everywhere.
func Service(tb testing.TB, env string) string {
	tb.Helper()
	v := os.Getenv(env)
	problem := ""
	if v == "" {
		problem = env + " is not set"
	} else if err := probe(env, v); err != nil {
		problem = fmt.Sprintf("the service named by %s does not answer: %v", env, err)
	}
	if problem == "" {
		return v
	}
	if os.Getenv(EnvRequire) == "1" {
		tb.Fatalf("%s, and %s=1 requires every test service", problem, EnvRequire)
	}
	tb.Skipf("%s: run ./scripts/test with the service up, or set %s to its address", problem, env)
	return ""
}

// probes caches one connection attempt per service and process, so a
// service that is down costs one timeout, not one per test.
var probes sync.Map // value -> *probeResult

type probeResult struct {
	once sync.Once
	err  error
}

// probe opens (and closes) a TCP connection to the service's address.
func probe(env, value string) error {
	r, _ := probes.LoadOrStore(value, &probeResult{})
	pr := r.(*probeResult)
	pr.once.Do(func() {
		addr, err := serviceAddr(env, value)
		if err != nil {
			pr.err = err
			return
		}
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			pr.err = fmt.Errorf("connect to %s: %w", addr, err)
			return
		}
		c.Close()
	})
	return pr.err
}

// serviceAddr is the host:port of a service address in its variable's form.
func serviceAddr(env, value string) (string, error) {
	switch env {
	case EnvMariaDB:
		cfg, err := mysql.ParseDSN(value)
		if err != nil {
			return "", fmt.Errorf("parse %s: %w", env, err)
		}
		return cfg.Addr, nil
	case EnvRedis:
		opts, err := redis.ParseURL(value)
		if err != nil {
			return "", fmt.Errorf("parse %s: %w", env, err)
		}
		return opts.Addr, nil
	default:
		u, err := url.Parse(value)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("parse %s: want a URL with a host", env)
		}
		if u.Port() == "" {
			return net.JoinHostPort(u.Hostname(), "5432"), nil
		}
		return u.Host, nil
	}
}

// PostgresMaxConns bounds a test's PostgreSQL pool: the server is shared
// with other test packages and other runs (max_connections is often 100),
// and pgx's default grows with the number of CPUs.
const PostgresMaxConns = 4

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
	conn, err := pgConnect(ctx, base)
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
		c, err := pgConnect(ctx, base)
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
