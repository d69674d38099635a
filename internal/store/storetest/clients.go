package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

func newClient(t *testing.T, name string) *lethe.Client {
	return &lethe.Client{ID: newID(t), Name: name, CreatedAt: t0}
}

func testClients(t *testing.T, s store.Store) {
	ctx := context.Background()
	b := newClient(t, "bravo")
	a := newClient(t, "alpha")
	for _, c := range []*lethe.Client{b, a} {
		if err := s.CreateClient(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
	}
	if !a.CreatedAt.Equal(micro(t0)) {
		t.Errorf("CreateClient did not normalise CreatedAt")
	}
	wantErr(t, "CreateClient(same name)", s.CreateClient(ctx, newClient(t, "alpha"), nil), store.ErrConflict)
	dupID := newClient(t, "charlie")
	dupID.ID = a.ID
	wantErr(t, "CreateClient(same id)", s.CreateClient(ctx, dupID, nil), store.ErrConflict)

	got, err := s.GetClient(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, got); diff != "" {
		t.Errorf("GetClient (-want +got):\n%s", diff)
	}
	got, err = s.GetClientByName(ctx, "bravo")
	if err != nil || got.ID != b.ID {
		t.Errorf("GetClientByName = %v, %v", got, err)
	}
	_, err = s.GetClient(ctx, newID(t))
	wantErr(t, "GetClient(unknown)", err, store.ErrNotFound)
	_, err = s.GetClientByName(ctx, "zulu")
	wantErr(t, "GetClientByName(unknown)", err, store.ErrNotFound)

	if err := s.SetClientDisabled(ctx, b.ID, true); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "SetClientDisabled(unknown)", s.SetClientDisabled(ctx, newID(t), true), store.ErrNotFound)
	list, err := s.ListClients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.Disabled = true
	if diff := cmp.Diff([]*lethe.Client{a, b}, list); diff != "" {
		t.Errorf("ListClients (-want +got):\n%s", diff)
	}
}

func testCredentials(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newClient(t, "partner")
	creds := []store.Credential{
		{Kind: store.CredAPIKey, Hash: "apikey-hash-1", CreatedAt: t0},
		{Kind: store.CredHMACSecret, Secret: "foobar", CreatedAt: t0},
	}
	if err := s.CreateClient(ctx, c, creds); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Hour)
	got, err := s.FindCredential(ctx, store.CredAPIKey, "apikey-hash-1", now)
	if err != nil {
		t.Fatal(err)
	}
	want := store.Credential{ID: got.ID, ClientID: c.ID, Kind: store.CredAPIKey, Hash: "apikey-hash-1", CreatedAt: micro(t0)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("FindCredential (-want +got):\n%s", diff)
	}
	_, err = s.FindCredential(ctx, store.CredOAuthSecret, "apikey-hash-1", now)
	wantErr(t, "FindCredential(other kind)", err, store.ErrNotFound)

	secrets, err := s.ClientCredentials(ctx, c.ID, store.CredHMACSecret, now)
	if err != nil || len(secrets) != 1 || secrets[0].Secret != "foobar" || secrets[0].Hash != "" {
		t.Fatalf("ClientCredentials(hmac) = %+v, %v", secrets, err)
	}

	// Rotation: the old key expires after an overlap, the new one does not.
	overlapEnd := now.Add(time.Hour)
	if err := s.ExpireCredentials(ctx, c.ID, store.CredAPIKey, overlapEnd); err != nil {
		t.Fatal(err)
	}
	if err := s.AddCredential(ctx, store.Credential{ClientID: c.ID, Kind: store.CredAPIKey, Hash: "apikey-hash-2", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FindCredential(ctx, store.CredAPIKey, "apikey-hash-1", overlapEnd.Add(-time.Microsecond)); err != nil {
		t.Errorf("old key during the overlap: %v", err)
	}
	_, err = s.FindCredential(ctx, store.CredAPIKey, "apikey-hash-1", overlapEnd)
	wantErr(t, "FindCredential(old key after the overlap)", err, store.ErrNotFound)
	if _, err := s.FindCredential(ctx, store.CredAPIKey, "apikey-hash-2", overlapEnd.Add(24*time.Hour)); err != nil {
		t.Errorf("new key: %v", err)
	}
	keys, err := s.ClientCredentials(ctx, c.ID, store.CredAPIKey, now)
	if err != nil || len(keys) != 2 || keys[0].Hash != "apikey-hash-1" || !keys[0].ExpiresAt.Equal(micro(overlapEnd)) || keys[1].Hash != "apikey-hash-2" {
		t.Errorf("ClientCredentials during the overlap = %+v, %v", keys, err)
	}
	keys, err = s.ClientCredentials(ctx, c.ID, store.CredAPIKey, overlapEnd)
	if err != nil || len(keys) != 1 || keys[0].Hash != "apikey-hash-2" {
		t.Errorf("ClientCredentials after the overlap = %+v, %v", keys, err)
	}

	// A credential hash belongs to one client only; the failed create
	// leaves no client behind.
	other := newClient(t, "other")
	err = s.CreateClient(ctx, other, []store.Credential{{Kind: store.CredAPIKey, Hash: "apikey-hash-2", CreatedAt: t0}})
	wantErr(t, "CreateClient(taken credential)", err, store.ErrConflict)
	_, err = s.GetClient(ctx, other.ID)
	wantErr(t, "client of a failed CreateClient", err, store.ErrNotFound)
	wantErr(t, "AddCredential(taken)", s.AddCredential(ctx, store.Credential{ClientID: c.ID, Kind: store.CredAPIKey, Hash: "apikey-hash-2", CreatedAt: t0}), store.ErrConflict)
	wantErr(t, "AddCredential(unknown client)", s.AddCredential(ctx, store.Credential{ClientID: newID(t), Kind: store.CredAPIKey, Hash: "h", CreatedAt: t0}), store.ErrNotFound)
	for _, bad := range []store.Credential{
		{ClientID: c.ID, Kind: store.CredAPIKey, Secret: "plain", CreatedAt: t0},
		{ClientID: c.ID, Kind: store.CredHMACSecret, Hash: "h", CreatedAt: t0},
		{ClientID: c.ID, Kind: "bogus", Hash: "h", CreatedAt: t0},
	} {
		if err := s.AddCredential(ctx, bad); err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("AddCredential(%s with hash %t) = %v, want a validation error", bad.Kind, bad.Hash != "", err)
		}
	}

	if err := s.SetClientDisabled(ctx, c.ID, true); err != nil {
		t.Fatal(err)
	}
	_, err = s.FindCredential(ctx, store.CredAPIKey, "apikey-hash-2", now)
	wantErr(t, "FindCredential(disabled client)", err, store.ErrNotFound)
	if err := s.SetClientDisabled(ctx, c.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FindCredential(ctx, store.CredAPIKey, "apikey-hash-2", now); err != nil {
		t.Errorf("FindCredential(re-enabled client): %v", err)
	}
}

func testCredentialsSealedAtRest(t *testing.T, s store.Store) {
	ctx := context.Background()
	secret := "hmac-secret-" + newID(t)
	c := newClient(t, "sealed")
	if err := s.CreateClient(ctx, c, []store.Credential{{Kind: store.CredHMACSecret, Secret: secret, CreatedAt: t0}}); err != nil {
		t.Fatal(err)
	}
	assertAbsent(t, s, "client_credentials", secret)
	got, err := s.ClientCredentials(ctx, c.ID, store.CredHMACSecret, t0)
	if err != nil || len(got) != 1 || got[0].Secret != secret {
		t.Errorf("ClientCredentials = %d, %v", len(got), err)
	}
}

func testTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newClient(t, "tok")
	if err := s.CreateClient(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	tok := store.Token{Hash: "token-hash", ClientID: c.ID, Scope: "deletion", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "CreateToken(same hash)", s.CreateToken(ctx, tok), store.ErrConflict)
	wantErr(t, "CreateToken(unknown client)", s.CreateToken(ctx, store.Token{Hash: "h2", ClientID: newID(t), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}), store.ErrNotFound)

	got, err := s.FindToken(ctx, "token-hash", t0.Add(time.Hour-time.Microsecond))
	if err != nil {
		t.Fatal(err)
	}
	want := tok
	want.CreatedAt, want.ExpiresAt = micro(t0), micro(t0.Add(time.Hour))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("FindToken (-want +got):\n%s", diff)
	}
	_, err = s.FindToken(ctx, "token-hash", t0.Add(time.Hour))
	wantErr(t, "FindToken(expired)", err, store.ErrNotFound)
	_, err = s.FindToken(ctx, "other-hash", t0)
	wantErr(t, "FindToken(unknown)", err, store.ErrNotFound)

	// ExpireTokens shortens, never lengthens.
	long := store.Token{Hash: "long-hash", ClientID: c.ID, CreatedAt: t0, ExpiresAt: t0.Add(48 * time.Hour)}
	if err := s.CreateToken(ctx, long); err != nil {
		t.Fatal(err)
	}
	if err := s.ExpireTokens(ctx, c.ID, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FindToken(ctx, "long-hash", t0.Add(2*time.Hour-time.Microsecond)); err != nil {
		t.Errorf("FindToken before the new expiry: %v", err)
	}
	_, err = s.FindToken(ctx, "long-hash", t0.Add(2*time.Hour))
	wantErr(t, "FindToken(at the new expiry)", err, store.ErrNotFound)
	if got, err := s.FindToken(ctx, "token-hash", t0); err != nil || !got.ExpiresAt.Equal(micro(t0.Add(time.Hour))) {
		t.Errorf("ExpireTokens lengthened an earlier expiry: %+v, %v", got, err)
	}

	if err := s.SetClientDisabled(ctx, c.ID, true); err != nil {
		t.Fatal(err)
	}
	_, err = s.FindToken(ctx, "token-hash", t0)
	wantErr(t, "FindToken(disabled client)", err, store.ErrNotFound)
	// Tokens die with the disable: enabling again does not revive them.
	if err := s.SetClientDisabled(ctx, c.ID, false); err != nil {
		t.Fatal(err)
	}
	_, err = s.FindToken(ctx, "token-hash", t0)
	wantErr(t, "FindToken(re-enabled client, token of before the disable)", err, store.ErrNotFound)
	fresh := store.Token{Hash: "fresh-hash", ClientID: c.ID, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateToken(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FindToken(ctx, "fresh-hash", t0); err != nil {
		t.Errorf("FindToken(token issued after re-enabling): %v", err)
	}
}
