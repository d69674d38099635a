package testdb

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MariaDBDSN creates an empty database t_<random> (utf8mb4) on the test
// MariaDB and returns a go-sql-driver/mysql DSN for it, so tests in
// parallel never see each other's tables. The database is dropped after
// the test.
func MariaDBDSN(tb testing.TB) string {
	tb.Helper()
	base := Service(tb, EnvMariaDB)
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		tb.Fatalf("parse %s: %v", EnvMariaDB, err)
	}
	name := "t_" + randomHex(8)
	exec := func(stmt string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db, err := sql.Open("mysql", base)
		if err != nil {
			return err
		}
		defer db.Close()
		_, err = whileFull(ctx, func(ctx context.Context) (sql.Result, error) { return db.ExecContext(ctx, stmt) })
		return err
	}
	// The name is ours (hex), so building the statement is safe.
	if err := exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4"); err != nil {
		tb.Fatalf("create database on %s: %v", EnvMariaDB, err)
	}
	tb.Cleanup(func() {
		if err := exec("DROP DATABASE IF EXISTS " + name); err != nil {
			tb.Logf("drop database %s: %v", name, err)
		}
	})
	cfg.DBName = name
	return cfg.FormatDSN()
}
