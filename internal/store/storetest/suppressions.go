package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

func testSuppressions(t *testing.T, s store.Store) {
	ctx := context.Background()
	mail := lethe.Identity{Type: lethe.IdentityEmail, Value: "suppressed@example.com"}
	linked := lethe.Identity{Type: lethe.IdentityUserID, Value: "u-4242"}
	stranger := lethe.Identity{Type: lethe.IdentityEmail, Value: "stranger@example.com"}

	r := mustCreate(t, s, newRequest(t, "c1", mail))
	if err := s.AddLinkedIdentities(ctx, r.ID, []lethe.Identity{linked}); err != nil {
		t.Fatal(err)
	}
	admin := mustCreate(t, s, newRequest(t, "", stranger))

	check := func(scope store.Scope, ids ...lethe.Identity) []bool {
		t.Helper()
		got, err := s.CheckSuppressions(ctx, scope, ids)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	all, c1, c2 := store.Scope{All: true}, store.Scope{ClientID: "c1"}, store.Scope{ClientID: "c2"}
	if got := check(all, mail, linked); !cmp.Equal(got, []bool{false, false}) {
		t.Fatalf("before: %v", got)
	}

	err := s.InTx(ctx, func(tx store.Tx) error {
		n, err := tx.SuppressRequestIdentities(ctx, r.ID, t0)
		if err != nil || n != 2 {
			t.Errorf("SuppressRequestIdentities: n %d err %v, want 2", n, err)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.SuppressRequestIdentities(ctx, r.ID, t0); err != nil || n != 2 {
		t.Fatalf("second SuppressRequestIdentities: n %d err %v", n, err)
	}
	if _, err := s.SuppressRequestIdentities(ctx, admin.ID, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SuppressRequestIdentities(ctx, newID(t), t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("suppress a missing request: %v, want ErrNotFound", err)
	}

	// The list holds keyed hashes only: no value is stored in plaintext.
	assertAbsent(t, s, "suppressions", mail.Value)
	assertAbsent(t, s, "suppressions", linked.Value)

	for _, tc := range []struct {
		name  string
		scope store.Scope
		want  []bool
	}{
		{"admin sees every entry", all, []bool{true, true, true, false}},
		{"a client sees its own", c1, []bool{true, true, false, false}},
		{"another client sees none", c2, []bool{false, false, false, false}},
		{"the zero scope sees none", store.Scope{}, []bool{false, false, false, false}},
	} {
		other := lethe.Identity{Type: lethe.IdentityEmail, Value: "nobody@example.com"}
		if got := check(tc.scope, mail, linked, stranger, other); !cmp.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	// The same identity twice in one check answers twice.
	if got := check(c1, mail, mail); !cmp.Equal(got, []bool{true, true}) {
		t.Errorf("repeated identity: %v", got)
	}

	h, n, err := s.RemoveSuppression(ctx, mail)
	if err != nil || n != 1 || len(h) != 64 {
		t.Fatalf("RemoveSuppression: hash %q n %d err %v", h, n, err)
	}
	if _, n, err := s.RemoveSuppression(ctx, mail); err != nil || n != 0 {
		t.Fatalf("second RemoveSuppression: n %d err %v, want 0", n, err)
	}
	if got := check(all, mail, linked); !cmp.Equal(got, []bool{false, true}) {
		t.Errorf("after removal: %v", got)
	}
}
