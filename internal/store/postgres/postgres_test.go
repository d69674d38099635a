package postgres_test

import (
	"context"
	"testing"

	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/store/postgres"
	"github.com/lethe-privacy/lethe/internal/store/storetest"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

func openStore(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), dsn, postgres.Options{Keyring: storetest.Keyring(t), MaxConns: testdb.PostgresMaxConns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Exercise(t, func(t *testing.T) store.Store {
		s := openStore(t, testdb.PostgresDSN(t))
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestReadyNeedsMigrations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testdb.PostgresDSN(t)
	s := openStore(t, dsn)
	if err := s.Ready(ctx); err == nil {
		t.Fatal("Ready before Migrate succeeded")
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("Ready after Migrate: %v", err)
	}
	if err := openStore(t, dsn).Ready(ctx); err != nil {
		t.Fatalf("Ready from a second pool: %v", err)
	}
}

func TestOpenBadDSNHidesIt(t *testing.T) {
	t.Parallel()
	_, err := postgres.Open(context.Background(), "postgres://user:s3cret@%zz", postgres.Options{Keyring: storetest.Keyring(t)})
	if err == nil {
		t.Fatal("bad DSN accepted")
	}
	if got := err.Error(); contains(got, "s3cret") {
		t.Errorf("error shows the password: %s", got)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
