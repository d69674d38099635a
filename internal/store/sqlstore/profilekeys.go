package sqlstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/lethe-privacy/lethe/internal/store"
)

// profileKeyAAD binds a sealed key to its name.
func profileKeyAAD(name string) []byte { return []byte("lethe/profile_keys\x00" + name) }

// GetProfileKey implements store.ProfileKeys.
func (q *queries) GetProfileKey(ctx context.Context, name string) (store.ProfileKey, error) {
	k := store.ProfileKey{Name: name}
	var sealed []byte
	err := q.queryRow(ctx, `SELECT private_sealed, certificate, created_at FROM profile_keys WHERE name = ?`, name).
		Scan(&sealed, &k.Certificate, dbTime{&k.CreatedAt})
	if err != nil {
		return store.ProfileKey{}, fmt.Errorf("get profile key: %w", notFound(err))
	}
	if k.Private, err = q.kr.Open(sealed, profileKeyAAD(name)); err != nil {
		return store.ProfileKey{}, fmt.Errorf("open profile key %s: %w", name, err)
	}
	return k, nil
}

// CreateProfileKey implements store.ProfileKeys.
func (q *queries) CreateProfileKey(ctx context.Context, k store.ProfileKey) error {
	if k.Name == "" || len(k.Private) == 0 || len(k.Certificate) == 0 || k.CreatedAt.IsZero() {
		return errors.New("create profile key: Name, Private, Certificate and CreatedAt are required")
	}
	n, err := q.exec(ctx, `INSERT INTO profile_keys (name, private_sealed, certificate, created_at)
		VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		k.Name, q.kr.Seal(k.Private, profileKeyAAD(k.Name)), k.Certificate, q.ts(k.CreatedAt))
	if err != nil {
		return fmt.Errorf("create profile key: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("create profile key: %w", store.ErrConflict)
	}
	return nil
}
