package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

// testProfileKeys: a profile key round-trips, its private part sealed at
// rest; a second create under the same name is ErrConflict and changes
// nothing.
func testProfileKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.GetProfileKey(ctx, "opendsr"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetProfileKey before any: %v", err)
	}
	k := store.ProfileKey{Name: "opendsr", Private: []byte("private-key-material-0123"), Certificate: []byte("cert-der"), CreatedAt: t0}
	if err := s.CreateProfileKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	assertAbsent(t, s, "profile_keys", "private-key-material")
	again := k
	again.Private = []byte("another-key")
	if err := s.CreateProfileKey(ctx, again); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second CreateProfileKey: %v, want ErrConflict", err)
	}
	got, err := s.GetProfileKey(ctx, "opendsr")
	if err != nil || !bytes.Equal(got.Private, k.Private) || !bytes.Equal(got.Certificate, k.Certificate) || !got.CreatedAt.Equal(micro(t0)) {
		t.Fatalf("GetProfileKey = %+v, %v", got, err)
	}
}

// testCallbackFormat: an event keeps the format it was rendered in.
func testCallbackFormat(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := mustCreate(t, s, newRequest(t, "c1", lethe.Identity{Type: lethe.IdentityEmail, Value: "fmt@example.com"}))
	e := newStatusEvent(t, r.ID, lethe.StatusRunning)
	e.Seq, e.Format = 1, "opendsr"
	if err := s.CreateCallbackEvent(ctx, e); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetCallbackEvent(ctx, e.ID)
	if err != nil || got.Format != "opendsr" {
		t.Fatalf("GetCallbackEvent = %+v, %v", got, err)
	}
	es, err := s.ListCallbackEvents(ctx, r.ID)
	if err != nil || len(es) != 1 || es[0].Format != "opendsr" {
		t.Fatalf("ListCallbackEvents = %+v, %v", es, err)
	}
}
