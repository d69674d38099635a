package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	msqlite "modernc.org/sqlite"

	"github.com/lethe-privacy/lethe/internal/seal"
)

// Connector is the driver connector of the file at path with lethe's
// pragmas (created 0600 when missing), for tests that wrap it to observe
// every statement the store and River run. OpenDB makes a store of a pool
// built on it.
func Connector(path string) (driver.Connector, error) {
	if path == "" {
		return nil, errors.New("sqlite connector: a path is required")
	}
	if err := CreatePrivateFile(path); err != nil {
		return nil, fmt.Errorf("sqlite connector: %w", err)
	}
	return msqlite.NewConnector(dsn(path))
}

// OpenDB is Open on db, a pool built on Connector; closing the store
// closes db. It does not migrate: call Migrate.
func OpenDB(ctx context.Context, db *sql.DB, kr *seal.Keyring) (*Store, error) {
	if kr == nil {
		return nil, errors.New("open sqlite: a Keyring is required")
	}
	if err := db.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	st, err := newStore(conn{db: db}, kr)
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	return &Store{Store: st, db: db}, nil
}
