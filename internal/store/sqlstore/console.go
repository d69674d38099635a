package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe/internal/store"
)

// CreateSession implements store.Console.
func (q *queries) CreateSession(ctx context.Context, s store.Session) error {
	if s.IDHash == "" || s.Operator == "" || s.CSRF == "" || s.ExpiresAt.IsZero() {
		return errors.New("create session: IDHash, Operator, CSRF and ExpiresAt are required")
	}
	if _, err := q.exec(ctx, `INSERT INTO console_sessions (id_hash, operator, csrf, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?)`, s.IDHash, s.Operator, s.CSRF, q.ts(s.CreatedAt), q.ts(s.ExpiresAt)); err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// GetSession implements store.Console. The operator's role is read with
// the session, so a role change or a disable takes effect on the next page.
func (q *queries) GetSession(ctx context.Context, idHash string, now time.Time) (store.Session, store.Operator, error) {
	var (
		s store.Session
		o store.Operator
	)
	err := q.queryRow(ctx, `SELECT s.id_hash, s.operator, s.csrf, s.created_at, s.expires_at, o.name, o.role
		FROM console_sessions s JOIN operators o ON o.name = s.operator
		WHERE s.id_hash = ? AND s.expires_at > ? AND NOT o.disabled`, idHash, q.ts(now)).
		Scan(&s.IDHash, &s.Operator, &s.CSRF, dbTime{&s.CreatedAt}, dbTime{&s.ExpiresAt}, &o.Name, &o.Role)
	if err != nil {
		return store.Session{}, store.Operator{}, fmt.Errorf("get session: %w", notFound(err))
	}
	return s, o, nil
}

// DeleteSession implements store.Console.
func (q *queries) DeleteSession(ctx context.Context, idHash string) error {
	if _, err := q.exec(ctx, `DELETE FROM console_sessions WHERE id_hash = ?`, idHash); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteExpiredSessions implements store.Console.
func (q *queries) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	n, err := q.exec(ctx, `DELETE FROM console_sessions WHERE expires_at <= ?`, q.ts(now))
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	return int(n), nil
}

// importAAD binds an import's sealed rows to its id, so rows of one import
// cannot be passed off as another's.
func importAAD(id string) []byte { return []byte("console_import:" + id) }

// CreateImport implements store.Console.
func (q *queries) CreateImport(ctx context.Context, imp store.Import, rows []store.ImportRow) error {
	if imp.ID == "" || imp.Operator == "" || imp.CreatedAt.IsZero() {
		return errors.New("create import: ID, Operator and CreatedAt are required")
	}
	plain, err := json.Marshal(rows)
	if err != nil {
		return fmt.Errorf("create import: %w", err)
	}
	sealed := q.kr.Seal(plain, importAAD(imp.ID))
	if _, err := q.exec(ctx, `INSERT INTO console_imports (id, operator, state, total, rows_sealed, created_at)
		VALUES (?, ?, 'running', ?, ?, ?)`, imp.ID, imp.Operator, len(rows), sealed, q.ts(imp.CreatedAt)); err != nil {
		return fmt.Errorf("create import: %w", err)
	}
	return nil
}

const importColumns = `id, operator, state, total, done, created, duplicates, failed, created_at, finished_at`

func scanImport(r Row) (store.Import, error) {
	var imp store.Import
	err := r.Scan(&imp.ID, &imp.Operator, &imp.State, &imp.Total, &imp.Done, &imp.Created, &imp.Duplicates, &imp.Failed,
		dbTime{&imp.CreatedAt}, dbTime{&imp.FinishedAt})
	return imp, err
}

// GetImport implements store.Console.
func (q *queries) GetImport(ctx context.Context, id string) (store.Import, error) {
	imp, err := scanImport(q.queryRow(ctx, `SELECT `+importColumns+` FROM console_imports WHERE id = ?`, id))
	if err != nil {
		return store.Import{}, fmt.Errorf("get import: %w", notFound(err))
	}
	return imp, nil
}

// ListImports implements store.Console.
func (q *queries) ListImports(ctx context.Context, limit int) ([]store.Import, error) {
	rows, err := q.query(ctx, `SELECT `+importColumns+` FROM console_imports ORDER BY created_at DESC, id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("list imports: %w", err)
	}
	out, err := collect(rows, func(rows Rows) (store.Import, error) { return scanImport(rows) })
	if err != nil {
		return nil, fmt.Errorf("list imports: %w", err)
	}
	return out, nil
}

// LeaseImport implements store.Console. The update is a compare-and-set
// on the lease, so two nodes racing for one import cannot both win it.
func (q *queries) LeaseImport(ctx context.Context, owner string, now, until time.Time) (store.Import, []store.ImportRow, error) {
	var id string
	err := q.queryRow(ctx, `SELECT id FROM console_imports
		WHERE state = 'running' AND (lease_until <= ? OR lease_owner = ?)
		ORDER BY created_at, id LIMIT 1`, q.ts(now), owner).Scan(&id)
	if err != nil {
		return store.Import{}, nil, fmt.Errorf("lease import: %w", notFound(err))
	}
	n, err := q.exec(ctx, `UPDATE console_imports SET lease_owner = ?, lease_until = ?
		WHERE id = ? AND state = 'running' AND (lease_until <= ? OR lease_owner = ?)`,
		owner, q.ts(until), id, q.ts(now), owner)
	if err != nil {
		return store.Import{}, nil, fmt.Errorf("lease import: %w", err)
	}
	if n == 0 {
		return store.Import{}, nil, fmt.Errorf("lease import: %w", store.ErrNotFound)
	}
	var sealed []byte
	imp, err := scanImport(q.queryRow(ctx, `SELECT `+importColumns+` FROM console_imports WHERE id = ?`, id))
	if err == nil {
		err = q.queryRow(ctx, `SELECT rows_sealed FROM console_imports WHERE id = ?`, id).Scan(&sealed)
	}
	if err != nil {
		return store.Import{}, nil, fmt.Errorf("lease import: %w", notFound(err))
	}
	plain, err := q.kr.Open(sealed, importAAD(id))
	if err != nil {
		return store.Import{}, nil, fmt.Errorf("lease import: open rows: %w", err)
	}
	var rows []store.ImportRow
	if err := json.Unmarshal(plain, &rows); err != nil {
		return store.Import{}, nil, fmt.Errorf("lease import: rows: %w", err)
	}
	if imp.Done > len(rows) {
		return store.Import{}, nil, fmt.Errorf("lease import: %d rows done of %d", imp.Done, len(rows))
	}
	return imp, rows[imp.Done:], nil
}

// AdvanceImport implements store.Console.
func (q *queries) AdvanceImport(ctx context.Context, id, owner string, p store.ImportProgress, now, until time.Time) (bool, error) {
	n, err := q.exec(ctx, `UPDATE console_imports SET done = done + ?, created = created + ?,
		duplicates = duplicates + ?, failed = failed + ?, lease_until = ?
		WHERE id = ? AND state = 'running' AND lease_owner = ?`,
		p.Done, p.Created, p.Duplicates, p.Failed, q.ts(until), id, owner)
	if err != nil {
		return false, fmt.Errorf("advance import: %w", err)
	}
	if n == 0 {
		return false, nil
	}
	if _, err := q.exec(ctx, `UPDATE console_imports SET state = 'done', rows_sealed = NULL, finished_at = ?, lease_owner = ''
		WHERE id = ? AND done >= total`, q.ts(now), id); err != nil {
		return false, fmt.Errorf("advance import: %w", err)
	}
	return true, nil
}
