package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
)

// MigrationsTable records applied migrations. It is not goose's default
// name so that lethe can share a database with an application that also
// uses goose.
const MigrationsTable = "lethe_goose_db_version"

// Migrator applies one dialect's embedded migrations with goose.
type Migrator struct {
	db       *sql.DB
	closeDB  bool
	provider *goose.Provider
	latest   int64
}

// NewMigrator prepares the migrations in fsys (SQL files at its root) for
// db. closeDB says whether Close closes db (true when db is a database/sql
// view opened only for goose). It does not touch the database.
func NewMigrator(dialect goose.Dialect, db *sql.DB, fsys fs.FS, closeDB bool, opts ...goose.ProviderOption) (*Migrator, error) {
	opts = append([]goose.ProviderOption{
		goose.WithTableName(MigrationsTable),
		// Only this store's migrations, never ones registered globally by
		// some other package in the binary.
		goose.WithDisableGlobalRegistry(true),
	}, opts...)
	p, err := goose.NewProvider(dialect, db, fsys, opts...)
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	src := p.ListSources()
	if len(src) == 0 {
		return nil, errors.New("load migrations: none embedded")
	}
	return &Migrator{db: db, closeDB: closeDB, provider: p, latest: src[len(src)-1].Version}, nil
}

// Latest is the newest embedded migration version.
func (m *Migrator) Latest() int64 { return m.latest }

// Up applies every pending migration.
func (m *Migrator) Up(ctx context.Context) error {
	if _, err := m.provider.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Version returns the newest applied migration, 0 when none is.
func (m *Migrator) Version(ctx context.Context) (int64, error) {
	// Read the table directly rather than through goose, which would create
	// it (a write) when missing: a readiness probe must not change anything.
	var v sql.NullInt64
	err := m.db.QueryRowContext(ctx, "SELECT max(version_id) FROM "+MigrationsTable).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("read migration version (run migrate?): %w", err)
	}
	return v.Int64, nil
}

// Check returns nil when every embedded migration is applied. A database
// migrated further by a newer lethe also passes: during a rolling upgrade
// the old processes keep serving (migrations are additive) instead of all
// failing their readiness probes at the moment the new one migrates.
func (m *Migrator) Check(ctx context.Context) error {
	v, err := m.Version(ctx)
	if err != nil {
		return err
	}
	if v < m.latest {
		return fmt.Errorf("database schema is at migration %d, this lethe needs %d: run migrate", v, m.latest)
	}
	return nil
}

// Close releases the database/sql view when the Migrator owns it.
func (m *Migrator) Close() error {
	if m.closeDB {
		return m.db.Close()
	}
	return nil
}
