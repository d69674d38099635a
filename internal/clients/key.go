package clients

import (
	"fmt"
	"strings"

	"github.com/lethe-privacy/lethe/internal/seal"
)

// EnvSecretKey names the environment variable holding the master key.
const EnvSecretKey = "LETHE_SECRET_KEY"

// LoadKeyring returns the deployment's keyring. envKey is the value of
// LETHE_SECRET_KEY (64 hex characters or base64 of 32 bytes). When it is
// empty and db is a SQLite file, the key is read from KeyFilePath(db),
// created on first start; created reports that, so the caller can log it
// (and where: KeyFilePath). With PostgreSQL the key is required: processes
// on several machines share the database and must share the key, which a
// file beside one of them cannot guarantee.
func LoadKeyring(db, envKey string) (k *seal.Keyring, created bool, err error) {
	var master []byte
	switch {
	case strings.TrimSpace(envKey) != "":
		master, err = seal.ParseKey(envKey)
		if err != nil {
			// ParseKey never quotes the value; neither does this.
			return nil, false, fmt.Errorf("%s: %w", EnvSecretKey, err)
		}
	case isPostgres(db):
		return nil, false, fmt.Errorf("%s is required with PostgreSQL (every lethe process must use the same key)", EnvSecretKey)
	default:
		path := KeyFilePath(db)
		if path == "" {
			return nil, false, fmt.Errorf("%s is required with an in-memory database", EnvSecretKey)
		}
		master, created, err = seal.LoadOrCreateKeyFile(path)
		if err != nil {
			return nil, false, err
		}
	}
	k, err = seal.New(master)
	if err != nil {
		return nil, false, err
	}
	return k, created, nil
}

// KeyFilePath is where the generated key of the SQLite database db lives:
// beside it, as "<db>.key" (so backups that take the directory take both,
// and two databases in one directory keep separate keys). It is "" for an
// in-memory or PostgreSQL database.
func KeyFilePath(db string) string {
	if isPostgres(db) {
		return ""
	}
	p := strings.TrimPrefix(db, "file:")
	if i := strings.IndexByte(p, '?'); i >= 0 && strings.HasPrefix(db, "file:") {
		p = p[:i]
	}
	if p == "" || p == ":memory:" || strings.Contains(db, "mode=memory") {
		return ""
	}
	return p + ".key"
}

func isPostgres(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}
