package suppression_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/suppression"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// suppress lists ids as a completed request of clientID would.
func suppress(t *testing.T, st store.Store, clientID string, ids ...lethe.Identity) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	r := &lethe.Request{
		ID: uuid.Must(uuid.NewV7()).String(), ClientID: clientID, Regulation: lethe.GDPR,
		Status: lethe.StatusReceived, Stage: lethe.StageResolve, Identities: ids, SubjectKey: uuid.NewString(),
		ReceivedAt: now, DueAt: now.Add(time.Hour), UpdatedAt: now,
	}
	if err := st.CreateRequest(ctx, r); err != nil {
		t.Fatal(err)
	}
	if n, err := st.SuppressRequestIdentities(ctx, r.ID, now); err != nil || n != len(ids) {
		t.Fatalf("SuppressRequestIdentities = %d, %v", n, err)
	}
}

func TestCheckNormalisesAndScopes(t *testing.T) {
	t.Parallel()
	testdb.ForEachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		suppress(t, st, "partner-a", lethe.Identity{Type: lethe.IdentityEmail, Value: "ada@example.com"})
		// Written differently from how it was listed: normalised first.
		ids := []lethe.Identity{
			{Type: lethe.IdentityEmail, Value: "  ADA@Example.com "},
			{Type: lethe.IdentityEmail, Value: "grace@example.com"},
		}
		for _, tc := range []struct {
			scope store.Scope
			want  []bool
		}{
			{store.Scope{All: true}, []bool{true, false}},
			{store.Scope{ClientID: "partner-a"}, []bool{true, false}},
			{store.Scope{ClientID: "partner-b"}, []bool{false, false}}, // not its entry
			{store.Scope{}, []bool{false, false}},                      // sees nothing
		} {
			got, err := suppression.Check(ctx, st, tc.scope, ids)
			if err != nil {
				t.Fatalf("Check(%+v): %v", tc.scope, err)
			}
			if len(got) != 2 || got[0] != tc.want[0] || got[1] != tc.want[1] {
				t.Errorf("Check(%+v) = %v, want %v", tc.scope, got, tc.want)
			}
		}
	})
}

func TestCheckRefusesBadInput(t *testing.T) {
	t.Parallel()
	st := testdb.OpenStore(t, "sqlite")
	many := make([]lethe.Identity, suppression.MaxCheck+1)
	for i := range many {
		many[i] = lethe.Identity{Type: lethe.IdentityEmail, Value: "a@example.com"}
	}
	for name, ids := range map[string][]lethe.Identity{
		"none":     nil,
		"too many": many,
		"invalid":  {{Type: lethe.IdentityEmail, Value: "ok@example.com"}, {Type: lethe.IdentityEmail, Value: "not an email"}},
	} {
		_, err := suppression.Check(context.Background(), st, store.Scope{All: true}, ids)
		var le *lethe.Error
		if !errors.As(err, &le) || le.Code != lethe.EINVALID {
			t.Errorf("%s: error %v, want EINVALID", name, err)
		}
		if name == "invalid" && (le == nil || !strings.Contains(le.Message, "identities[1]")) {
			t.Errorf("invalid: message %v does not name the identity's index", err)
		}
	}
}

func TestRemoveAuditsWithoutTheValue(t *testing.T) {
	t.Parallel()
	testdb.ForEachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		ada := lethe.Identity{Type: lethe.IdentityEmail, Value: "ada@example.com"}
		suppress(t, st, "partner-a", ada)
		suppress(t, st, "partner-b", ada)

		// Removing what is not listed changes nothing and records nothing.
		n, err := suppression.Remove(ctx, st, lethe.Identity{Type: lethe.IdentityEmail, Value: "nobody@example.com"}, lethe.ActorAdmin, "", time.Now())
		if err != nil || n != 0 {
			t.Fatalf("Remove(unlisted) = %d, %v", n, err)
		}
		n, err = suppression.Remove(ctx, st, lethe.Identity{Type: lethe.IdentityEmail, Value: "Ada@Example.com"}, lethe.ActorAdmin, "", time.Now())
		if err != nil || n != 2 {
			t.Fatalf("Remove = %d, %v; want both clients' entries", n, err)
		}
		got, err := suppression.Check(ctx, st, store.Scope{All: true}, []lethe.Identity{ada})
		if err != nil || got[0] {
			t.Errorf("still suppressed after Remove: %v, %v", got, err)
		}

		es, err := st.ListAudit(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != 1 {
			t.Fatalf("audit events: %+v; want one removal", es)
		}
		e := es[0]
		if e.Type != suppression.EventRemoved || e.Actor != lethe.ActorAdmin || e.Details["entries"] != "2" ||
			e.Details["identity_type"] != "email" || len(e.Details["hash"]) != 64 {
			t.Errorf("removal event: %+v", e)
		}
		for k, v := range e.Details {
			if strings.Contains(strings.ToLower(v), "ada") {
				t.Errorf("removal event detail %s holds the value", k)
			}
		}

		if _, err := suppression.Remove(ctx, st, lethe.Identity{Type: lethe.IdentityEmail, Value: "not an email"}, lethe.ActorAdmin, "", time.Now()); err == nil {
			t.Error("Remove accepted an invalid identity")
		}
	})
}
