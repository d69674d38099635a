package postgres_test

import (
	"context"
	"testing"

	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/store/postgres"
	"github.com/lethe-privacy/lethe/internal/store/storetest"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Exercise(t, func(t *testing.T) store.Store {
		return testdb.OpenStore(t, "postgres")
	})
}

func TestReadyNeedsMigrations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testdb.PostgresDSN(t)
	s := testdb.OpenPostgres(t, dsn, postgres.Options{})
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
	if err := testdb.OpenPostgres(t, dsn, postgres.Options{}).Ready(ctx); err != nil {
		t.Fatalf("Ready from a second pool: %v", err)
	}
}

func TestOpenBadDSNHidesIt(t *testing.T) {
	t.Parallel()
	_, err := postgres.Open(context.Background(), "postgres://user:s3cret@%zz", postgres.Options{Keyring: testdb.Keyring(t)})
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
