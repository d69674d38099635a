package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

// testProofs covers receipts, signing keys and what retention deletes.
func testProofs(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := mustCreate(t, s, newRequest(t, "client-a",
		lethe.Identity{Type: lethe.IdentityEmail, Value: "proof@example.com"}))
	if err := s.AppendAudit(ctx, &lethe.AuditEvent{RequestID: r.ID, Time: t0, Actor: lethe.ActorSystem, Type: "request.received"}); err != nil {
		t.Fatal(err)
	}

	hs, err := s.RequestIdentityHashes(ctx, r.ID)
	if err != nil || len(hs) != 1 || hs[0].Type != "email" || hs[0].Source != "given" || len(hs[0].Hash) != 64 {
		t.Fatalf("RequestIdentityHashes = %+v, %v", hs, err)
	}
	if err := s.DropIdentityValues(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if hs2, _ := s.RequestIdentityHashes(ctx, r.ID); len(hs2) != 1 || hs2[0] != hs[0] {
		t.Errorf("hashes after drop = %+v, want %+v", hs2, hs)
	}

	// Receipts: scoped, one per request, kept byte for byte.
	if _, err := s.GetReceipt(ctx, r.ID, store.Scope{All: true}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetReceipt before issue: %v", err)
	}
	rec := store.Receipt{RequestID: r.ID, ClientID: "client-a", KeyID: "k1", Body: []byte(`{"receipt":{"a":"<é>"}}`), IssuedAt: t0}
	if err := s.PutReceipt(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := s.PutReceipt(ctx, rec); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second PutReceipt: %v, want ErrConflict", err)
	}
	for _, sc := range []store.Scope{{All: true}, {ClientID: "client-a"}} {
		got, err := s.GetReceipt(ctx, r.ID, sc)
		if err != nil || !bytes.Equal(got.Body, rec.Body) || got.KeyID != "k1" || !got.IssuedAt.Equal(micro(t0)) {
			t.Errorf("GetReceipt(%+v) = %+v, %v", sc, got, err)
		}
	}
	for _, sc := range []store.Scope{{ClientID: "client-b"}, {}} {
		if _, err := s.GetReceipt(ctx, r.ID, sc); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetReceipt(%+v): %v, want ErrNotFound", sc, err)
		}
	}
	if got, _ := s.GetReceipt(ctx, r.ID, store.Scope{All: true}); got.PartnerBody != nil {
		t.Errorf("receipt stored without a partner receipt reads one back: %q", got.PartnerBody)
	}
	// Superseding (a failed request re-driven or closed) replaces both
	// documents, the partner's too.
	rec2 := rec
	rec2.Body, rec2.PartnerBody, rec2.IssuedAt = []byte(`{"receipt":{"b":1}}`), []byte(`{"receipt":{"p":"<é>"}}`), t0.Add(time.Millisecond)
	if err := s.SupersedeReceipt(ctx, rec2); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetReceipt(ctx, r.ID, store.Scope{ClientID: "client-a"}); err != nil || !bytes.Equal(got.Body, rec2.Body) ||
		!bytes.Equal(got.PartnerBody, rec2.PartnerBody) || !got.IssuedAt.Equal(micro(rec2.IssuedAt)) {
		t.Errorf("GetReceipt after SupersedeReceipt = %+v, %v", got, err)
	}
	if err := s.SupersedeReceipt(ctx, rec); err != nil {
		t.Fatal(err)
	}

	// Signing keys: one current; rotation retires, never deletes.
	k1 := store.SigningKey{KeyID: "k1", PublicKey: bytes.Repeat([]byte{1}, 32), PrivateSealed: []byte("sealed"), CreatedAt: t0}
	k2 := store.SigningKey{KeyID: "k2", PublicKey: bytes.Repeat([]byte{2}, 32), CreatedAt: t0.Add(time.Hour)}
	for _, k := range []store.SigningKey{k1, k1, k2} {
		if err := s.MakeCurrentSigningKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := s.SigningKeys(ctx)
	if err != nil || len(keys) != 2 {
		t.Fatalf("SigningKeys = %+v, %v", keys, err)
	}
	if !keys[0].Current || keys[0].KeyID != "k2" || keys[0].PrivateSealed != nil || keys[1].Current ||
		!keys[1].RetiredAt.Equal(micro(k2.CreatedAt)) || string(keys[1].PrivateSealed) != "sealed" {
		t.Errorf("after rotation: %+v", keys)
	}

	// Verification helpers.
	ids, err := s.AuditRequestIDs(ctx, "", 10)
	if err != nil || len(ids) != 1 || ids[0] != r.ID {
		t.Errorf("AuditRequestIDs = %v, %v", ids, err)
	}
	orphan := mustCreate(t, s, newRequest(t, "client-a"))
	if ids, err := s.RequestsWithoutAudit(ctx, 10); err != nil || len(ids) != 1 || ids[0] != orphan.ID {
		t.Errorf("RequestsWithoutAudit = %v, %v", ids, err)
	}

	// Retention.
	if _, err := s.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: r.ID, To: lethe.StatusCompleted, ToStage: lethe.StageDone, At: t0}); err != nil {
		t.Fatal(err)
	}
	if ids, err := s.FinishedRequestsBefore(ctx, t0, 10); err != nil || len(ids) != 0 {
		t.Errorf("FinishedRequestsBefore(t0) = %v, %v", ids, err)
	}
	if ids, err := s.FinishedRequestsBefore(ctx, t0.Add(time.Second), 10); err != nil || len(ids) != 1 || ids[0] != r.ID {
		t.Errorf("FinishedRequestsBefore(t0+1s) = %v, %v", ids, err)
	}
	// A failed request still open to a re-drive is not finished; closed
	// (or denied) it is.
	failed := mustCreate(t, s, newRequest(t, "client-a"))
	denied := mustCreate(t, s, newRequest(t, "client-a"))
	for _, u := range []store.UpdateRequestStateParams{
		{ID: failed.ID, To: lethe.StatusFailed, ToStage: lethe.StageDone, At: t0},
		{ID: denied.ID, To: lethe.StatusDenied, ToStage: lethe.StageDone, At: t0},
	} {
		if _, err := s.UpdateRequestState(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	later := t0.Add(time.Second)
	if ids, err := s.FinishedRequestsBefore(ctx, later, 10); err != nil || !sameIDs(ids, r.ID, denied.ID) {
		t.Errorf("FinishedRequestsBefore with a failed request open = %v, %v; want %s and %s", ids, err, r.ID, denied.ID)
	}
	if ids, err := s.FailedOpenBefore(ctx, t0, 10); err != nil || len(ids) != 0 {
		t.Errorf("FailedOpenBefore(t0) = %v, %v", ids, err)
	}
	if ids, err := s.FailedOpenBefore(ctx, later, 10); err != nil || !sameIDs(ids, failed.ID) {
		t.Errorf("FailedOpenBefore(t0+1s) = %v, %v; want %s", ids, err, failed.ID)
	}
	if _, err := s.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: failed.ID, To: lethe.StatusFailed, ToStage: lethe.StageClosed, At: t0}); err != nil {
		t.Fatal(err)
	}
	if ids, err := s.FailedOpenBefore(ctx, later, 10); err != nil || len(ids) != 0 {
		t.Errorf("FailedOpenBefore after the close = %v, %v", ids, err)
	}
	if ids, err := s.FinishedRequestsBefore(ctx, later, 10); err != nil || !sameIDs(ids, r.ID, denied.ID, failed.ID) {
		t.Errorf("FinishedRequestsBefore after the close = %v, %v", ids, err)
	}
	for _, id := range []string{failed.ID, denied.ID} {
		if _, err := s.DeleteRequest(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := s.DeleteRequest(ctx, r.ID); err != nil || !ok {
		t.Errorf("DeleteRequest = %v, %v", ok, err)
	}
	if ok, _ := s.DeleteRequest(ctx, r.ID); ok {
		t.Error("DeleteRequest twice reported a deletion")
	}
	if hs, _ := s.RequestIdentityHashes(ctx, r.ID); len(hs) != 0 {
		t.Errorf("identities survived their request: %+v", hs)
	}
	if _, err := s.GetReceipt(ctx, r.ID, store.Scope{ClientID: "client-a"}); err != nil {
		t.Errorf("receipt did not outlive its request: %v", err)
	}
	if ids, err := s.ReceiptsIssuedBefore(ctx, t0.Add(time.Second), 10); err != nil || len(ids) != 1 {
		t.Errorf("ReceiptsIssuedBefore = %v, %v", ids, err)
	}
	if err := s.DeleteProof(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if es, _ := s.ListAudit(ctx, r.ID); len(es) != 0 {
		t.Errorf("audit events survived DeleteProof: %d", len(es))
	}
	if _, err := s.GetReceipt(ctx, r.ID, store.Scope{All: true}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("receipt survived DeleteProof: %v", err)
	}
}

// sameIDs reports whether got holds exactly want, in any order.
func sameIDs(got []string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	seen := map[string]bool{}
	for _, id := range got {
		seen[id] = true
	}
	for _, id := range want {
		if !seen[id] {
			return false
		}
	}
	return true
}
