package clients_test

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/clients"
	"github.com/lethe-privacy/lethe/internal/profile/profiletest"
	"github.com/lethe-privacy/lethe/internal/ratelimit/ratelimittest"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

func newEnv(t *testing.T, b profiletest.Backend) *profiletest.Env {
	k := testdb.Keyring(t)
	s, _ := b.Open(t, k)
	return profiletest.NewEnv(t, s, k, ratelimittest.NewClock())
}

func TestCreate(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		ctx := context.Background()
		e := newEnv(t, b)

		given := clients.CreateParams{Name: "acme", APIKey: "00000000-1111-2222-3333-444444444444", Secret: "foobar", ClientID: "acme-app", ClientSecret: "acme-secret"}
		c, err := e.Clients.Create(ctx, given)
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		if c.APIKey != given.APIKey || c.Secret != given.Secret || c.ClientID != given.ClientID || c.ClientSecret != given.ClientSecret || c.Name != "acme" || c.ID == "" {
			t.Fatalf("Create = %+v, want the given values", c)
		}

		gen, err := e.Clients.Create(ctx, clients.CreateParams{Name: "generated"})
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		for name, v := range map[string]struct {
			v    string
			want int
		}{"api key": {gen.APIKey, 32}, "secret": {gen.Secret, 64}, "client_id": {gen.ClientID, 32}, "client_secret": {gen.ClientSecret, 64}} {
			if _, err := hex.DecodeString(v.v); err != nil || len(v.v) != v.want {
				t.Errorf("generated %s has %d characters (hex: %v), want %d hex", name, len(v.v), err == nil, v.want)
			}
		}
		gen2, err := e.Clients.Create(ctx, clients.CreateParams{Name: "generated2"})
		if err != nil {
			t.Fatal(err)
		}
		if gen2.Secret == gen.Secret || gen2.APIKey == gen.APIKey || gen2.ClientSecret == gen.ClientSecret {
			t.Fatal("two generated clients share a value")
		}

		// Hashed kinds are stored as hashes, never as the value.
		for _, kind := range []store.CredentialKind{store.CredAPIKey, store.CredOAuthClientID, store.CredOAuthSecret} {
			creds, err := e.Store.ClientCredentials(ctx, c.ID, kind, e.Clock.Now())
			if err != nil || len(creds) != 1 {
				t.Fatalf("ClientCredentials(%s) = %v, %v", kind, creds, err)
			}
			if creds[0].Secret != "" || creds[0].Hash == "" || strings.Contains(creds[0].Hash, "acme") || creds[0].Hash == given.APIKey {
				t.Errorf("%s stored as %+v, want only a keyed hash", kind, creds[0])
			}
		}

		list, err := e.Clients.List(ctx)
		if err != nil || len(list) != 3 || list[0].Name != "acme" {
			t.Fatalf("List = %v, %v", list, err)
		}

		// Conflicts: the name, or a given credential used by another client.
		if _, err := e.Clients.Create(ctx, clients.CreateParams{Name: "acme"}); lethe.ErrorCode(err) != lethe.ECONFLICT || !strings.Contains(err.Error(), "named") {
			t.Errorf("Create(same name) = %v, want a name conflict", err)
		}
		if _, err := e.Clients.Create(ctx, clients.CreateParams{Name: "other", APIKey: given.APIKey}); lethe.ErrorCode(err) != lethe.ECONFLICT || strings.Contains(err.Error(), "acme") {
			t.Errorf("Create(same api key) = %v, want a conflict that names nobody", err)
		}
		if _, err := e.Clients.Create(ctx, clients.CreateParams{Name: "other2", ClientID: given.ClientID}); lethe.ErrorCode(err) != lethe.ECONFLICT {
			t.Errorf("Create(same client_id) = %v, want a conflict", err)
		}
		// A secret may be shared: it identifies nobody.
		if _, err := e.Clients.Create(ctx, clients.CreateParams{Name: "other3", Secret: "foobar"}); err != nil {
			t.Errorf("Create(same shared secret) = %v", err)
		}

		for _, p := range []clients.CreateParams{
			{Name: ""}, {Name: "-x"}, {Name: "has space"}, {Name: strings.Repeat("a", 65)},
			{Name: "ok", APIKey: "has space"}, {Name: "ok", Secret: "tab\t"}, {Name: "ok", ClientSecret: strings.Repeat("s", 257)},
			{Name: "ok", ClientID: "é"},
		} {
			if _, err := e.Clients.Create(ctx, p); lethe.ErrorCode(err) != lethe.EINVALID {
				t.Errorf("Create(%+v) = %v, want invalid_request", p, err)
			}
		}
	})
}

func TestAuthenticate(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		ctx := context.Background()
		e := newEnv(t, b)
		c, err := e.Clients.Create(ctx, clients.CreateParams{Name: "acme", Secret: "foobar"})
		if err != nil {
			t.Fatal(err)
		}
		id, secrets, err := e.Clients.AuthenticateAPIKey(ctx, c.APIKey)
		if err != nil || id != c.ID || len(secrets) != 1 || string(secrets[0]) != "foobar" {
			t.Fatalf("AuthenticateAPIKey = %q, %q, %v", id, secrets, err)
		}
		for _, k := range []string{"", "nope", strings.ToUpper(c.APIKey), c.APIKey + " ", strings.Repeat("k", 1000)} {
			if _, _, err := e.Clients.AuthenticateAPIKey(ctx, k); !errors.Is(err, clients.ErrInvalidCredentials) {
				t.Errorf("AuthenticateAPIKey(%.10q) = %v, want ErrInvalidCredentials", k, err)
			}
		}
		if got, err := e.Clients.AuthenticateOAuth(ctx, c.ClientID, c.ClientSecret); err != nil || got != c.ID {
			t.Fatalf("AuthenticateOAuth = %q, %v", got, err)
		}
		for _, p := range [][2]string{{c.ClientID, "wrong"}, {"wrong", c.ClientSecret}, {c.ClientSecret, c.ClientID}, {"", ""}, {c.ClientID, ""}} {
			if _, err := e.Clients.AuthenticateOAuth(ctx, p[0], p[1]); !errors.Is(err, clients.ErrInvalidCredentials) {
				t.Errorf("AuthenticateOAuth(%d, %d chars) = %v, want ErrInvalidCredentials", len(p[0]), len(p[1]), err)
			}
		}

		// A disabled client is refused everywhere, tokens included.
		tok, err := e.Clients.IssueToken(ctx, c.ID, "s")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Clients.Disable(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.Clients.AuthenticateAPIKey(ctx, c.APIKey); !errors.Is(err, clients.ErrInvalidCredentials) {
			t.Errorf("disabled: AuthenticateAPIKey = %v", err)
		}
		if _, err := e.Clients.AuthenticateOAuth(ctx, c.ClientID, c.ClientSecret); !errors.Is(err, clients.ErrInvalidCredentials) {
			t.Errorf("disabled: AuthenticateOAuth = %v", err)
		}
		if _, err := e.Clients.AuthenticateToken(ctx, tok.Value); !errors.Is(err, clients.ErrInvalidCredentials) {
			t.Errorf("disabled: AuthenticateToken = %v", err)
		}
		if err := e.Clients.Enable(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		// The client is back, its old token is not: it died with the
		// disable (it may be why the client was disabled).
		if _, err := e.Clients.AuthenticateToken(ctx, tok.Value); !errors.Is(err, clients.ErrInvalidCredentials) {
			t.Errorf("enabled again: AuthenticateToken(token of before the disable) = %v, want ErrInvalidCredentials", err)
		}
		if _, _, err := e.Clients.AuthenticateAPIKey(ctx, c.APIKey); err != nil {
			t.Errorf("enabled again: AuthenticateAPIKey = %v", err)
		}
		if err := e.Clients.Disable(ctx, "nobody"); lethe.ErrorCode(err) != lethe.ENOTFOUND {
			t.Errorf("Disable(unknown) = %v, want not_found", err)
		}
	})
}

func TestTokenExpiry(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		ctx := context.Background()
		e := newEnv(t, b)
		c, err := e.Clients.Create(ctx, clients.CreateParams{Name: "acme"})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := e.Clients.IssueToken(ctx, c.ID, "connect:compliance")
		if err != nil {
			t.Fatal(err)
		}
		if len(tok.Value) != 64 || tok.ExpiresAt.Sub(tok.CreatedAt) != clients.DefaultTokenTTL {
			t.Fatalf("token = %d chars, valid %s", len(tok.Value), tok.ExpiresAt.Sub(tok.CreatedAt))
		}
		got, err := e.Clients.AuthenticateToken(ctx, tok.Value)
		if err != nil || got.ClientID != c.ID || got.Scope != "connect:compliance" || got.Hash == tok.Value {
			t.Fatalf("AuthenticateToken = %+v, %v", got, err)
		}
		e.Clock.Advance(clients.DefaultTokenTTL - time.Second)
		if _, err := e.Clients.AuthenticateToken(ctx, tok.Value); err != nil {
			t.Fatalf("1s before expiry: %v", err)
		}
		e.Clock.Advance(time.Second)
		if _, err := e.Clients.AuthenticateToken(ctx, tok.Value); !errors.Is(err, clients.ErrInvalidCredentials) {
			t.Fatalf("at expiry: %v, want ErrInvalidCredentials", err)
		}
		if _, err := e.Clients.AuthenticateToken(ctx, ""); !errors.Is(err, clients.ErrInvalidCredentials) {
			t.Fatalf("empty token: %v", err)
		}
	})
}

func TestRotateSecret(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		ctx := context.Background()
		e := newEnv(t, b)
		c, err := e.Clients.Create(ctx, clients.CreateParams{Name: "acme", Secret: "old-hmac", ClientSecret: "old-oauth"})
		if err != nil {
			t.Fatal(err)
		}
		rot, err := e.Clients.RotateSecret(ctx, "acme", time.Hour)
		if err != nil {
			t.Fatalf("RotateSecret: %v", err)
		}
		if rot.ID != c.ID || rot.Secret == "" || rot.ClientSecret == "" || !rot.OldValidUntil.Equal(e.Clock.Now().Add(time.Hour)) {
			t.Fatalf("RotateSecret = %+v", rot)
		}
		hmacSecrets := func() []string {
			t.Helper()
			_, ss, err := e.Clients.AuthenticateAPIKey(ctx, c.APIKey)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, s := range ss {
				out = append(out, string(s))
			}
			return out
		}
		oauthOK := func(secret string) bool {
			t.Helper()
			_, err := e.Clients.AuthenticateOAuth(ctx, c.ClientID, secret)
			if err != nil && !errors.Is(err, clients.ErrInvalidCredentials) {
				t.Fatal(err)
			}
			return err == nil
		}

		// Within the overlap both the old and the new secrets work.
		e.Clock.Advance(time.Hour - time.Second)
		if got := hmacSecrets(); len(got) != 2 || got[0] != "old-hmac" || got[1] != rot.Secret {
			t.Fatalf("within overlap: HMAC secrets = %d, want old and new", len(got))
		}
		if !oauthOK("old-oauth") || !oauthOK(rot.ClientSecret) {
			t.Fatal("within overlap: an OAuth secret is refused")
		}
		// After it, only the new ones.
		e.Clock.Advance(time.Second)
		if got := hmacSecrets(); len(got) != 1 || got[0] != rot.Secret {
			t.Fatalf("after overlap: HMAC secrets = %d, want only the new", len(got))
		}
		if oauthOK("old-oauth") || !oauthOK(rot.ClientSecret) {
			t.Fatal("after overlap: old OAuth secret accepted or new refused")
		}

		// Rotating again keeps the first rotation's secret for the new
		// overlap; overlap 0 retires the current one at once.
		rot2, err := e.Clients.RotateSecret(ctx, "acme", 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := hmacSecrets(); len(got) != 1 || got[0] != rot2.Secret {
			t.Fatalf("overlap 0: HMAC secrets = %d, want only the newest", len(got))
		}
		if oauthOK(rot.ClientSecret) || !oauthOK(rot2.ClientSecret) {
			t.Fatal("overlap 0: previous OAuth secret still accepted")
		}
		if _, err := e.Clients.RotateSecret(ctx, "acme", -time.Second); lethe.ErrorCode(err) != lethe.EINVALID {
			t.Errorf("negative overlap: %v", err)
		}
		if _, err := e.Clients.RotateSecret(ctx, "nobody", time.Hour); lethe.ErrorCode(err) != lethe.ENOTFOUND {
			t.Errorf("unknown client: %v", err)
		}
	})
}

func TestLoadKeyring(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "lethe.db")
	k1, created, err := clients.LoadKeyring(db, "")
	if err != nil || !created {
		t.Fatalf("first start: created=%v err=%v", created, err)
	}
	fi, err := os.Stat(clients.KeyFilePath(db))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", fi, err)
	}
	k2, created, err := clients.LoadKeyring(db, "")
	if err != nil || created {
		t.Fatalf("second start: created=%v err=%v", created, err)
	}
	if k1.Hash("d", "v") != k2.Hash("d", "v") {
		t.Fatal("the key changed between starts")
	}
	hexKey := strings.Repeat("ab", 32)
	k3, created, err := clients.LoadKeyring("postgres://x@y/z", hexKey)
	if err != nil || created {
		t.Fatalf("env key: %v", err)
	}
	if k3.Hash("d", "v") == k1.Hash("d", "v") {
		t.Fatal("the env key was not used")
	}
	if _, _, err := clients.LoadKeyring("postgres://x@y/z", ""); err == nil {
		t.Fatal("postgres without a key: want an error")
	}
	if _, _, err := clients.LoadKeyring(":memory:", ""); err == nil {
		t.Fatal("in-memory without a key: want an error")
	}
	if _, _, err := clients.LoadKeyring(db, "tooshort"); err == nil || strings.Contains(err.Error(), "tooshort") {
		t.Fatalf("bad env key: %v (must not echo it)", err)
	}
	for db, want := range map[string]string{
		"/var/lib/lethe.db":                 "/var/lib/lethe.db.key",
		"file:/data/l.db?_txlock=immediate": "/data/l.db.key",
		"file::memory:?cache=shared":        "",
		"postgresql://h/db":                 "",
	} {
		if got := clients.KeyFilePath(db); got != want {
			t.Errorf("KeyFilePath(%q) = %q, want %q", db, got, want)
		}
	}
}

// TestRotateShortensEarlierOverlap: an emergency rotation with overlap 0
// right after a routine one must retire every earlier secret, including
// the one still in the first rotation's overlap.
func TestRotateShortensEarlierOverlap(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		ctx := context.Background()
		e := newEnv(t, b)
		c, err := e.Clients.Create(ctx, clients.CreateParams{Name: "acme", Secret: "s0"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Clients.RotateSecret(ctx, "acme", 24*time.Hour); err != nil {
			t.Fatal(err)
		}
		rot, err := e.Clients.RotateSecret(ctx, "acme", 0)
		if err != nil {
			t.Fatal(err)
		}
		_, secrets, err := e.Clients.AuthenticateAPIKey(ctx, c.APIKey)
		if err != nil {
			t.Fatal(err)
		}
		if len(secrets) != 1 || string(secrets[0]) != rot.Secret {
			t.Fatalf("%d secrets valid after an overlap-0 rotation, want only the newest", len(secrets))
		}
	})
}
