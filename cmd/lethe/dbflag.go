package main

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// schemePrefix matches a URL scheme ("mysql:", "postgresql-typo:"). One
// letter is not a scheme but a Windows drive ("C:\lethe.db").
var schemePrefix = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]+):`)

// normaliseDB checks a database setting (--db, LETHE_DB or the config's
// db) and returns it in the form the stores open. The rule:
//
//   - postgres://... or postgresql://... is PostgreSQL;
//   - sqlite:PATH is the SQLite file PATH, and file:PATH?... a SQLite URI;
//   - anything else without a scheme is a SQLite file path;
//   - any other scheme (mysql://, postgresql-typo://, redis:...) is an
//     error, so a misspelt URL never becomes a SQLite file named after it.
//
// The error names the scheme only: a DSN can hold a password.
func normaliseDB(db string) (string, error) {
	if strings.TrimSpace(db) == "" {
		return "", errors.New("db: must not be empty: a postgres:// URL or a SQLite file path")
	}
	m := schemePrefix.FindStringSubmatch(db)
	if m == nil {
		return db, nil
	}
	switch strings.ToLower(m[1]) {
	case "postgres", "postgresql":
		if !strings.HasPrefix(db[len(m[0]):], "//") {
			return "", fmt.Errorf("db: a %s URL starts with %s://", m[1], m[1])
		}
		return db, nil
	case "file":
		return db, nil
	case "sqlite":
		path := strings.TrimPrefix(db[len(m[0]):], "//")
		if path == "" {
			return "", errors.New("db: sqlite: needs a file path, e.g. sqlite:./lethe.db")
		}
		return path, nil
	}
	return "", fmt.Errorf("db: unsupported scheme %q: want a postgres:// or postgresql:// URL, sqlite:PATH or a SQLite file path", m[1])
}
