package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/terminate"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// TestReceiptPartnerSeesStatesNotCounts: when a request ends, its client
// is served the signed partner receipt (states and outcomes per target,
// the full receipt's digest) and operators the full one (objects, counts,
// retention reasons). A receipt from before partner receipts answers the
// client 404 with a message, never the full document.
func TestReceiptPartnerSeesStatesNotCounts(t *testing.T) {
	t.Parallel()
	testdb.ForEachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		e := newOpEnv(t, st, nil)
		signer, _, err := audit.LoadSigner(ctx, st, testdb.Keyring(t), "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		res := e.create(t, clientATok, "partner@example.com", nil)
		if res.status != http.StatusAccepted {
			t.Fatalf("create: %d %s", res.status, res.body)
		}
		id := res.view(t).ID
		tasks := []lethe.Task{
			{RequestID: id, Target: "shop", State: lethe.TaskDone, Attempts: 1, Report: lethe.Report{Items: []lethe.ReportItem{
				{Object: "users", Action: lethe.ActionDelete, Rows: 3},
				{Object: "invoices", Action: lethe.ActionRetain, Rows: 2, Reason: "tax law: 10 years"},
			}}},
			{RequestID: id, Target: "crm", State: lethe.TaskDone, Attempts: 1},
		}
		err = st.InTx(ctx, func(tx store.Tx) error {
			req, err := tx.LockRequest(ctx, id)
			if err != nil {
				return err
			}
			ok, err := terminate.Path{Signer: signer}.Terminate(ctx, tx, req, tasks,
				terminate.Ending{To: lethe.StatusCompleted, At: time.Now(), Outcome: lethe.OutcomeErased})
			if err == nil && !ok {
				err = errors.New("not terminated")
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		keys, err := audit.KeyMap(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		path := "/v1/deletion-requests/" + id + "/receipt"

		// The operator: the full receipt, counts and reasons included.
		full := e.do(t, call{method: "GET", path: path, token: e.tokens["vera"]})
		if full.status != http.StatusOK {
			t.Fatalf("operator: %d %s", full.status, full.body)
		}
		rc, err := audit.Verify(full.body, keys)
		if err != nil {
			t.Fatal(err)
		}
		if len(rc.Retained) != 1 || rc.Retained[0].Reason != "tax law: 10 years" || rc.Targets[0].Items[0].Rows != 3 {
			t.Errorf("full receipt: retained %+v, targets %+v", rc.Retained, rc.Targets)
		}
		if admin := e.do(t, call{method: "GET", path: path, token: adminTok}); admin.status != http.StatusOK || string(admin.body) != string(full.body) {
			t.Errorf("admin token: %d, same document %v", admin.status, string(admin.body) == string(full.body))
		}

		// The client: the partner receipt, verifiable with the same keys.
		part := e.do(t, call{method: "GET", path: path, token: clientATok})
		if part.status != http.StatusOK {
			t.Fatalf("client: %d %s", part.status, part.body)
		}
		if _, err := audit.Verify(part.body, keys); !errors.Is(err, audit.ErrPartnerReceipt) {
			t.Errorf("Verify of the partner receipt: %v, want ErrPartnerReceipt", err)
		}
		pr, err := audit.VerifyPartner(part.body, keys)
		if err != nil {
			t.Fatal(err)
		}
		digest, err := audit.Digest(full.body)
		if err != nil {
			t.Fatal(err)
		}
		if pr.RequestID != id || pr.ClientID != "client-a" || pr.Status != lethe.StatusCompleted || pr.Outcome != lethe.OutcomeErased || pr.Receipt != digest {
			t.Errorf("partner receipt = %+v; want it to name the full receipt %s", pr, digest)
		}
		want := []audit.PartnerTarget{{Target: "shop", State: "done", Outcome: audit.OutcomeErased}, {Target: "crm", State: "done", Outcome: audit.OutcomeNotFound}}
		if len(pr.Targets) != 2 || pr.Targets[0] != want[0] || pr.Targets[1] != want[1] {
			t.Errorf("partner targets = %+v, want %+v", pr.Targets, want)
		}
		for _, leak := range []string{"users", "invoices", "tax law", `"rows"`, `"items"`, `"retained"`, `"identities"`} {
			if strings.Contains(string(part.body), leak) {
				t.Errorf("partner receipt holds %s: %s", leak, part.body)
			}
		}
		// Both digests are in the chain, and the stored pair verifies.
		var issued map[string]string
		events, err := st.ListAudit(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range events {
			if ev.Type == lethe.EventReceiptIssued {
				issued = ev.Details
			}
		}
		partDigest, _ := audit.Digest(part.body)
		if issued["receipt_sha256"] != digest || issued["partner_receipt_sha256"] != partDigest {
			t.Errorf("receipt.issued details = %v", issued)
		}
		if prob, err := audit.VerifyRequest(ctx, st, id, keys); err != nil || prob != nil {
			t.Errorf("VerifyRequest = %+v, %v", prob, err)
		}
		// A partner receipt that names another receipt is a problem.
		rec, err := st.GetReceipt(ctx, id, store.Scope{All: true})
		if err != nil {
			t.Fatal(err)
		}
		other, _, err := signer.SignPartner(&audit.PartnerReceipt{Version: audit.PartnerReceiptVersion, RequestID: id, Receipt: strings.Repeat("0", 64)})
		if err != nil {
			t.Fatal(err)
		}
		bad := rec
		bad.PartnerBody = other
		if err := st.SupersedeReceipt(ctx, bad); err != nil {
			t.Fatal(err)
		}
		if prob, err := audit.VerifyRequest(ctx, st, id, keys); err != nil || prob == nil {
			t.Errorf("VerifyRequest with a mismatched partner receipt = %+v, %v; want a problem", prob, err)
		}
		if err := st.SupersedeReceipt(ctx, rec); err != nil {
			t.Fatal(err)
		}

		if res := e.do(t, call{method: "GET", path: path, token: clientBTok}); res.status != http.StatusNotFound {
			t.Errorf("another client: %d %s", res.status, res.body)
		}

		// A receipt issued before partner receipts: the operator still
		// gets it, the client an honest 404.
		old := uuid.Must(uuid.NewV7()).String()
		if err := st.PutReceipt(ctx, store.Receipt{RequestID: old, ClientID: "client-a", KeyID: "k1", Body: full.body, IssuedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		oldPath := "/v1/deletion-requests/" + old + "/receipt"
		if res := e.do(t, call{method: "GET", path: oldPath, token: e.tokens["vera"]}); res.status != http.StatusOK {
			t.Errorf("operator, old receipt: %d", res.status)
		}
		res = e.do(t, call{method: "GET", path: oldPath, token: clientATok})
		if res.status != http.StatusNotFound || res.errorCode(t) != lethe.ENOTFOUND || !strings.Contains(string(res.body), "no partner receipt") {
			t.Errorf("client, old receipt: %d %s", res.status, res.body)
		}
		if strings.Contains(string(res.body), "tax law") {
			t.Error("the 404 leaks the full receipt")
		}
	})
}
