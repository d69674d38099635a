package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// TestPurgeClosesFailedOpenBeforePurging: a failed request nobody closed
// is not touched by the details purge, however old; it keeps its
// identities sealed for a re-drive until retention.failed_open runs out.
// Then the purge closes it by the operators' close path (system actor,
// audited, receipt issued again, identities dropped), and only
// request_details after that close are its details purged.
func TestPurgeClosesFailedOpenBeforePurging(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		clk := &testClock{t: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
		signer, _, err := audit.LoadSigner(ctx, st, testdb.Keyring(t), "", clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		const details, failedOpen = 7 * 24 * time.Hour, 90 * 24 * time.Hour
		cfg := testConfig()
		cfg.Now = clk.Now
		cfg.Signer = signer
		cfg.Retention = &Retention{RequestDetails: details, Legal: 3 * 365 * 24 * time.Hour, Register: 730 * 24 * time.Hour, FailedOpen: failedOpen}
		down := newMemTarget()
		down.put(email, 1)
		failing(down, true)
		p := start(t, st, cfg, Target{"shop", down})

		id := submit(t, st, p, email)
		failed := waitDone(t, st, id, lethe.StatusFailed)
		waitIdle(t, p)
		all := store.Scope{All: true}
		purgeAt := func(at time.Time) {
			t.Helper()
			clk.Set(at)
			if err := p.purge(ctx); err != nil {
				t.Fatal(err)
			}
		}
		sealed := func() int {
			t.Helper()
			ids, err := st.RequestIdentities(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			return len(ids)
		}

		// Past request_details but within failed_open: left open, details
		// and sealed identity kept, still re-drivable.
		purgeAt(failed.CompletedAt.Add(details + time.Hour))
		r, err := st.GetRequest(ctx, id, all)
		if err != nil {
			t.Fatalf("the details purge took a failed request still open: %v", err)
		}
		if !lethe.Redrivable(r.Status, r.Stage) || sealed() != 1 {
			t.Fatalf("day 8: %s/%s with %d identities; want failed/done with its identity sealed", r.Status, r.Stage, sealed())
		}
		purgeAt(failed.CompletedAt.Add(failedOpen - time.Minute))
		if r, err := st.GetRequest(ctx, id, all); err != nil || r.Stage != lethe.StageDone || sealed() != 1 {
			t.Fatalf("just before failed_open: %+v, %v, %d identities", r, err, sealed())
		}

		// failed_open has run out: closed by the system, receipt again.
		closeAt := failed.CompletedAt.Add(failedOpen + time.Minute)
		purgeAt(closeAt)
		r, err = st.GetRequest(ctx, id, all)
		if err != nil {
			t.Fatalf("closed request purged in the same run: %v", err)
		}
		if r.Status != lethe.StatusFailed || r.Stage != lethe.StageClosed || !r.CompletedAt.Equal(closeAt) {
			t.Fatalf("after failed_open: %s/%s closed %v; want failed/closed at %v", r.Status, r.Stage, r.CompletedAt, closeAt)
		}
		if n := sealed(); n != 0 {
			t.Errorf("%d identities kept after the close", n)
		}
		events, err := st.ListAudit(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var closes, receipts int
		for _, e := range events {
			switch e.Type {
			case lethe.EventRequestClosed:
				closes++
				if e.Actor != lethe.ActorSystem || e.Details["retention"] != "failed_open" || !e.Time.Equal(closeAt) {
					t.Errorf("close event = %+v", e)
				}
			case lethe.EventReceiptIssued:
				receipts++
			}
		}
		if closes != 1 || receipts != 2 {
			t.Errorf("audit: %d closes, %d receipts; want 1 close and the receipt issued again", closes, receipts)
		}
		rc, err := st.GetReceipt(ctx, id, all)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := audit.KeyMap(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := audit.Verify(rc.Body, keys)
		if err != nil {
			t.Fatal(err)
		}
		if doc.Status != lethe.StatusFailed || doc.CompletedAt != audit.FormatTime(closeAt) {
			t.Errorf("receipt after the close: %s completed %s", doc.Status, doc.CompletedAt)
		}
		if _, err := p.RetryRequest(ctx, id, reviewer); err == nil {
			t.Error("a request closed by retention was re-driven")
		}

		// Details go request_details after the close, like any closed
		// request's; the receipt stays.
		purgeAt(closeAt.Add(details - time.Minute))
		if _, err := st.GetRequest(ctx, id, all); err != nil {
			t.Fatalf("details purged before request_details from the close: %v", err)
		}
		purgeAt(closeAt.Add(details + time.Minute))
		if _, err := st.GetRequest(ctx, id, all); err == nil {
			t.Fatal("details of the closed request not purged")
		}
		if _, err := st.GetReceipt(ctx, id, all); err != nil {
			t.Errorf("receipt gone with the details: %v", err)
		}
		if n := auditTypes(t, st, id)[string(lethe.EventRequestClosed)]; n != 1 {
			t.Errorf("request.closed events = %d, want 1", n)
		}
	})
}
