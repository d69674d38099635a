package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lethe-privacy/lethe/internal/clients"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/pipeline"
	"github.com/lethe-privacy/lethe/internal/seal"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/store/postgres"
	"github.com/lethe-privacy/lethe/internal/store/sqlite"
)

// defaultDB is the embedded database used when neither --db, LETHE_DB nor
// the config file names one.
const defaultDB = "./lethe.db"

// loadConfig reads the config file when one is given (flags and their
// environment variables override it), or starts from the defaults. Every
// problem is reported at once; with problems in the file itself the
// decoded Config comes back too (for checks of the targets to add to the
// report), with the error.
func (g *globals) loadConfig() (*config.Config, error) {
	var (
		cfg  *config.Config
		errs []error
	)
	fileFlaggedDB := false
	if g.configPath != "" {
		c, err := config.Load(g.configPath, g.env)
		if c == nil {
			return nil, fmt.Errorf("config %s: %w", g.configPath, err)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("config %s: %w", g.configPath, err))
			var ce config.Errors
			if errors.As(err, &ce) {
				for _, fe := range ce {
					fileFlaggedDB = fileFlaggedDB || fe.Path == "db"
				}
			}
		}
		cfg = c
	} else {
		cfg = config.Default()
		if v, ok := g.env("LETHE_ADMIN_TOKEN"); ok {
			cfg.AdminToken = v
		}
		if err := cfg.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if g.db != "" {
		cfg.DB = g.db
	}
	if cfg.DB == "" {
		cfg.DB = defaultDB
	}
	db, err := normaliseDB(cfg.DB)
	if err != nil && (g.db != "" || !fileFlaggedDB) {
		errs = append(errs, err)
	}
	cfg.DB = db
	if len(errs) > 0 {
		return cfg, errors.Join(errs...)
	}
	return cfg, nil
}

func (g *globals) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: want debug, info, warn or error")
	}
	return slog.New(newRepeatLimiter(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}), time.Now)), nil
}

// pgPoolSpare is the PostgreSQL pool beyond one connection per worker:
// River's listener and leader election, HTTP handlers, metrics scrapes.
const pgPoolSpare = 10

// migratingStore is what both store implementations offer.
type migratingStore interface {
	store.Store
	Migrate(ctx context.Context) error
}

// openStore loads the deployment key and opens the database named by db:
// a postgres:// URL or a SQLite file path. A key generated now is logged
// (its path, never the key). workers sizes the PostgreSQL pool: each
// running job holds a connection per transaction, and River's listener
// keeps one of its own, so the pool must be larger than the job count.
func openStore(ctx context.Context, db string, env lookupEnv, log *slog.Logger, workers int) (migratingStore, *seal.Keyring, error) {
	envKey, _ := env(clients.EnvSecretKey)
	keys, created, err := clients.LoadKeyring(db, envKey)
	if err != nil {
		return nil, nil, err
	}
	if created {
		log.Warn("generated a new secret key beside the database; back it up with the database, or set LETHE_SECRET_KEY",
			"path", clients.KeyFilePath(db))
	}
	var st migratingStore
	if isPostgresURL(db) {
		size := int32(workers + pgPoolSpare)
		if strings.Contains(db, "pool_max_conns=") {
			size = 0 // the operator's cap in the URL wins
		}
		st, err = postgres.Open(ctx, db, postgres.Options{Keyring: keys, MaxConns: size, Log: log})
	} else {
		st, err = sqlite.Open(ctx, db, sqlite.Options{Keyring: keys})
	}
	if err != nil {
		return nil, nil, err
	}
	return st, keys, nil
}

// migrate brings lethe's tables and River's job tables up to date.
func migrate(ctx context.Context, st migratingStore) error {
	if err := st.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate store: %w", err)
	}
	if err := pipeline.Migrate(ctx, st); err != nil {
		return fmt.Errorf("migrate job queue: %w", err)
	}
	return nil
}

// withStore opens the database named by the flags and config, brought up
// to date, for commands that work on it directly.
func (g *globals) withStore(cmd *cobra.Command, fn func(context.Context, migratingStore, *seal.Keyring) error) error {
	ctx := cmd.Context()
	log, err := g.logger(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	st, keys, err := openStore(ctx, cfg.DB, g.env, log, 0)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := migrate(ctx, st); err != nil {
		return err
	}
	return fn(ctx, st, keys)
}

func isPostgresURL(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}
