package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

const clientCols = `id, name, disabled, created_at`

func scanClient(s scanner) (*lethe.Client, error) {
	c := &lethe.Client{}
	if err := s.Scan(&c.ID, &c.Name, &c.Disabled, dbTime{&c.CreatedAt}); err != nil {
		return nil, err
	}
	return c, nil
}

// CreateClient implements store.Clients. It normalises c.CreatedAt in place.
func (q *queries) CreateClient(ctx context.Context, c *lethe.Client, creds []store.Credential) error {
	if c.ID == "" || c.Name == "" || c.CreatedAt.IsZero() {
		return errors.New("create client: ID, Name and CreatedAt are required")
	}
	c.CreatedAt = normTime(c.CreatedAt)
	err := q.atomic(ctx, func(q *queries) error {
		var id string
		err := q.queryRow(ctx, `INSERT INTO clients (`+clientCols+`) VALUES (?, ?, ?, ?)
			ON CONFLICT DO NOTHING RETURNING id`, c.ID, c.Name, c.Disabled, q.ts(c.CreatedAt)).Scan(&id)
		if err != nil {
			if errors.Is(notFound(err), store.ErrNotFound) {
				return store.ErrConflict
			}
			return err
		}
		for _, cr := range creds {
			cr.ClientID = c.ID
			if err := q.insertCredential(ctx, cr); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	return nil
}

// GetClient implements store.Clients.
func (q *queries) GetClient(ctx context.Context, id string) (*lethe.Client, error) {
	c, err := scanClient(q.queryRow(ctx, `SELECT `+clientCols+` FROM clients WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("get client: %w", notFound(err))
	}
	return c, nil
}

// GetClientByName implements store.Clients.
func (q *queries) GetClientByName(ctx context.Context, name string) (*lethe.Client, error) {
	c, err := scanClient(q.queryRow(ctx, `SELECT `+clientCols+` FROM clients WHERE name = ?`, name))
	if err != nil {
		return nil, fmt.Errorf("get client by name: %w", notFound(err))
	}
	return c, nil
}

// ListClients implements store.Clients; clients come ordered by name.
func (q *queries) ListClients(ctx context.Context) ([]*lethe.Client, error) {
	rows, err := q.query(ctx, `SELECT `+clientCols+` FROM clients ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	cs, err := collect(rows, func(rows Rows) (*lethe.Client, error) { return scanClient(rows) })
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	return cs, nil
}

// SetClientDisabled implements store.Clients.
func (q *queries) SetClientDisabled(ctx context.Context, id string, disabled bool) error {
	err := q.atomic(ctx, func(q *queries) error {
		n, err := q.exec(ctx, `UPDATE clients SET disabled = ? WHERE id = ?`, disabled, id)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		if disabled {
			// Tokens die with the disable, so enabling the client again
			// does not bring back tokens that may have leaked.
			_, err = q.exec(ctx, `DELETE FROM access_tokens WHERE client_id = ?`, id)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("set client disabled: %w", err)
	}
	return nil
}

// credentialAAD binds a sealed secret to its client and kind.
func credentialAAD(clientID string, kind store.CredentialKind) []byte {
	return []byte("lethe/client_credentials\x00" + clientID + "\x00" + string(kind))
}

func checkCredential(c store.Credential) error {
	switch c.Kind {
	case store.CredHMACSecret, store.CredAgentVerifyKey:
		if c.Secret == "" || c.Hash != "" {
			return fmt.Errorf("credential %s: needs Secret and no Hash", c.Kind)
		}
	case store.CredAPIKey, store.CredOAuthClientID, store.CredOAuthSecret, store.CredAgentToken:
		if c.Hash == "" || c.Secret != "" {
			return fmt.Errorf("credential %s: needs Hash and no Secret", c.Kind)
		}
	default:
		return fmt.Errorf("credential kind %q is unknown", c.Kind)
	}
	if c.ClientID == "" || c.CreatedAt.IsZero() {
		return fmt.Errorf("credential %s: ClientID and CreatedAt are required", c.Kind)
	}
	return nil
}

// AddCredential implements store.Clients.
func (q *queries) AddCredential(ctx context.Context, c store.Credential) error {
	err := q.atomic(ctx, func(q *queries) error {
		var one int
		if err := q.queryRow(ctx, `SELECT 1 FROM clients WHERE id = ?`, c.ClientID).Scan(&one); err != nil {
			return notFound(err)
		}
		return q.insertCredential(ctx, c)
	})
	if err != nil {
		return fmt.Errorf("add credential: %w", err)
	}
	return nil
}

func (q *queries) insertCredential(ctx context.Context, c store.Credential) error {
	if err := checkCredential(c); err != nil {
		return err
	}
	// Untyped nils, so both drivers bind NULL (a nil []byte may bind as an
	// empty blob).
	var hash, sealed any
	if c.Hash != "" {
		hash = c.Hash
	} else {
		sealed = q.kr.Seal([]byte(c.Secret), credentialAAD(c.ClientID, c.Kind))
	}
	var id int64
	err := q.queryRow(ctx, `INSERT INTO client_credentials (client_id, kind, hash, secret_sealed, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id`,
		c.ClientID, c.Kind, hash, sealed, q.ts(c.CreatedAt), q.ts(c.ExpiresAt)).Scan(&id)
	if err != nil {
		if errors.Is(notFound(err), store.ErrNotFound) {
			return store.ErrConflict
		}
		return fmt.Errorf("insert credential: %w", err)
	}
	return nil
}

// ExpireCredentials implements store.Clients.
func (q *queries) ExpireCredentials(ctx context.Context, clientID string, kind store.CredentialKind, at time.Time) error {
	if at.IsZero() {
		return errors.New("expire credentials: a time is required")
	}
	// Earlier expiries are shortened too: a rotation with no overlap after
	// a leak must end a secret still living out an earlier overlap.
	_, err := q.exec(ctx, `UPDATE client_credentials SET expires_at = ?
		WHERE client_id = ? AND kind = ? AND (expires_at IS NULL OR expires_at > ?)`, q.ts(at), clientID, kind, q.ts(at))
	if err != nil {
		return fmt.Errorf("expire credentials: %w", err)
	}
	return nil
}

const credentialCols = `cc.id, cc.client_id, cc.kind, cc.hash, cc.secret_sealed, cc.created_at, cc.expires_at`

func (q *queries) scanCredential(s scanner) (store.Credential, error) {
	var c store.Credential
	var hash sql.NullString
	var sealed []byte
	err := s.Scan(&c.ID, &c.ClientID, &c.Kind, &hash, &sealed, dbTime{&c.CreatedAt}, dbTime{&c.ExpiresAt})
	if err != nil {
		return c, err
	}
	c.Hash = hash.String
	if sealed != nil {
		v, err := q.kr.Open(sealed, credentialAAD(c.ClientID, c.Kind))
		if err != nil {
			return c, fmt.Errorf("open %s credential %d: %w", c.Kind, c.ID, err)
		}
		c.Secret = string(v)
	}
	return c, nil
}

// FindCredential implements store.Clients.
func (q *queries) FindCredential(ctx context.Context, kind store.CredentialKind, hash string, now time.Time) (store.Credential, error) {
	c, err := q.scanCredential(q.queryRow(ctx, `SELECT `+credentialCols+`
		FROM client_credentials cc JOIN clients c ON c.id = cc.client_id
		WHERE cc.kind = ? AND cc.hash = ? AND (cc.expires_at IS NULL OR cc.expires_at > ?) AND NOT c.disabled`,
		kind, hash, q.ts(now)))
	if err != nil {
		return store.Credential{}, fmt.Errorf("find credential: %w", notFound(err))
	}
	return c, nil
}

// ClientCredentials implements store.Clients; oldest first.
func (q *queries) ClientCredentials(ctx context.Context, clientID string, kind store.CredentialKind, now time.Time) ([]store.Credential, error) {
	rows, err := q.query(ctx, `SELECT `+credentialCols+` FROM client_credentials cc
		WHERE cc.client_id = ? AND cc.kind = ? AND (cc.expires_at IS NULL OR cc.expires_at > ?)
		ORDER BY cc.id`, clientID, kind, q.ts(now))
	if err != nil {
		return nil, fmt.Errorf("client credentials: %w", err)
	}
	cs, err := collect(rows, func(rows Rows) (store.Credential, error) { return q.scanCredential(rows) })
	if err != nil {
		return nil, fmt.Errorf("client credentials: %w", err)
	}
	return cs, nil
}

// CreateToken implements store.Clients.
func (q *queries) CreateToken(ctx context.Context, t store.Token) error {
	if t.Hash == "" || t.ClientID == "" || t.CreatedAt.IsZero() {
		return errors.New("create token: Hash, ClientID and CreatedAt are required")
	}
	err := q.atomic(ctx, func(q *queries) error {
		var one int
		if err := q.queryRow(ctx, `SELECT 1 FROM clients WHERE id = ?`, t.ClientID).Scan(&one); err != nil {
			return notFound(err)
		}
		var h string
		err := q.queryRow(ctx, `INSERT INTO access_tokens (hash, client_id, scope, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING hash`,
			t.Hash, t.ClientID, t.Scope, q.ts(t.CreatedAt), q.ts(t.ExpiresAt)).Scan(&h)
		if errors.Is(notFound(err), store.ErrNotFound) {
			return store.ErrConflict
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	return nil
}

// ExpireTokens implements store.Clients.
func (q *queries) ExpireTokens(ctx context.Context, clientID string, at time.Time) error {
	if at.IsZero() {
		return errors.New("expire tokens: a time is required")
	}
	_, err := q.exec(ctx, `UPDATE access_tokens SET expires_at = ?
		WHERE client_id = ? AND (expires_at IS NULL OR expires_at > ?)`, q.ts(at), clientID, q.ts(at))
	if err != nil {
		return fmt.Errorf("expire tokens: %w", err)
	}
	return nil
}

// FindToken implements store.Clients.
func (q *queries) FindToken(ctx context.Context, hash string, now time.Time) (store.Token, error) {
	var t store.Token
	err := q.queryRow(ctx, `SELECT t.hash, t.client_id, t.scope, t.created_at, t.expires_at
		FROM access_tokens t JOIN clients c ON c.id = t.client_id
		WHERE t.hash = ? AND (t.expires_at IS NULL OR t.expires_at > ?) AND NOT c.disabled`,
		hash, q.ts(now)).Scan(&t.Hash, &t.ClientID, &t.Scope, dbTime{&t.CreatedAt}, dbTime{&t.ExpiresAt})
	if err != nil {
		return store.Token{}, fmt.Errorf("find token: %w", notFound(err))
	}
	return t, nil
}
