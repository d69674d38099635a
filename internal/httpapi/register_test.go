package httpapi

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// TestRegisterExportTenThousand exports a register of 10,000 requests,
// live and purged, open and closed, extended or not, and checks it row by
// row against what was stored, then its filters.
func TestRegisterExportTenThousand(t *testing.T) {
	t.Parallel()
	testdb.ForEachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		e := newOpEnv(t, st, nil)
		const n = 10_000
		base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
		rfc := func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format(time.RFC3339)
		}
		clients := []string{"client-a", "client-b", ""}
		want := make([][]string, 0, n)
		completed, inJune := 0, 0
		err := st.InTx(ctx, func(tx store.Tx) error {
			for i := range n {
				received := base.Add(time.Duration(i) * 7 * time.Minute)
				r := &lethe.Request{
					ID: uuid.Must(uuid.NewV7()).String(), ClientID: clients[i%3], ExternalID: fmt.Sprintf("ext-%d", i),
					Regulation: lethe.GDPR, Status: lethe.StatusReceived, Stage: lethe.StageResolve,
					Identities: []lethe.Identity{{Type: lethe.IdentityEmail, Value: fmt.Sprintf("person-%d@example.com", i)}},
					SubjectKey: fmt.Sprintf("subject-%d", i), ReceivedAt: received, DueAt: received.Add(30 * 24 * time.Hour), UpdatedAt: received,
				}
				if err := tx.CreateRequest(ctx, r); err != nil {
					return err
				}
				if received.Before(base.AddDate(0, 1, 0)) {
					inJune++
				}
				due, extendedFrom := r.DueAt, time.Time{}
				if i%7 == 0 {
					extendedFrom, due = r.DueAt, r.DueAt.Add(20*24*time.Hour)
					if _, err := tx.ExtendRequest(ctx, store.Extension{RequestID: r.ID, PreviousDue: r.DueAt, Due: due, Reason: "r",
						Actor: lethe.ActorOperator, ActorID: "rex", At: received}); err != nil {
						return err
					}
					if err := tx.AppendAudit(ctx, &lethe.AuditEvent{RequestID: r.ID, Time: received, Actor: lethe.ActorOperator, ActorID: "rex", Type: lethe.EventRequestExtended}); err != nil {
						return err
					}
				}
				row := []string{r.ID, r.ClientID, "gdpr", "received", "", rfc(received), rfc(due), rfc(extendedFrom), "", "", ""}
				if i%7 == 0 {
					row[10] = rfc(received) + " request.extended operator:rex"
				}
				if i%2 == 0 {
					closedAt := received.Add(time.Hour)
					if err := tx.CreateTasks(ctx, r.ID, []string{"db", "crm"}, closedAt); err != nil {
						return err
					}
					for _, tg := range []string{"db", "crm"} {
						if _, err := tx.FinishTask(ctx, store.FinishTaskParams{RequestID: r.ID, Target: tg, State: lethe.TaskDone, At: closedAt,
							Report: lethe.Report{Items: []lethe.ReportItem{{Object: "users", Action: lethe.ActionDelete, Rows: 1}}}}); err != nil {
							return err
						}
					}
					if _, err := tx.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: r.ID, To: lethe.StatusCompleted, ToStage: lethe.StageDone, At: closedAt, Outcome: lethe.OutcomeErased}); err != nil {
						return err
					}
					row[3], row[4], row[8], row[9] = "completed", "erased", rfc(closedAt), "crm:done;db:done"
					completed++
					if i%4 == 0 { // purged: only the register keeps it
						if ok, err := tx.ArchiveRequest(ctx, r.ID); err != nil || !ok {
							return fmt.Errorf("archive: %v %w", ok, err)
						}
						if _, err := tx.DeleteRequest(ctx, r.ID); err != nil {
							return err
						}
					}
				}
				want = append(want, row)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(want, func(a, b []string) int { return strings.Compare(a[0], b[0]) })

		export := func(query string) [][]string {
			t.Helper()
			res := e.do(t, call{method: "GET", path: "/v1/deletion-requests?format=csv" + query, token: e.tokens["vera"]})
			if res.status != http.StatusOK || res.header.Get("Content-Type") != "text/csv; charset=utf-8" {
				t.Fatalf("export%s: %d %s", query, res.status, res.body[:min(len(res.body), 300)])
			}
			if bytes.Contains(res.body, []byte("@example.com")) || bytes.Contains(res.body, []byte("ext-")) {
				t.Fatal("the register holds an identity or an external id")
			}
			rd := csv.NewReader(bytes.NewReader(res.body))
			header, err := rd.Read()
			if err != nil || !cmp.Equal(header, RegisterColumns) {
				t.Fatalf("header = %v, %v", header, err)
			}
			var rows [][]string
			for {
				row, err := rd.Read()
				if err == io.EOF {
					return rows
				}
				if err != nil {
					t.Fatal(err)
				}
				rows = append(rows, row)
			}
		}
		got := export("")
		if len(got) != n {
			t.Fatalf("export has %d rows, want %d", len(got), n)
		}
		bad := 0
		for i := range want {
			if !cmp.Equal(got[i], want[i]) {
				if bad++; bad <= 5 {
					t.Errorf("row %d:\n got %q\nwant %q", i+1, got[i], want[i])
				}
			}
		}
		if bad > 0 {
			t.Fatalf("%d of %d rows differ", bad, n)
		}
		if rows := export("&status=completed"); len(rows) != completed {
			t.Errorf("status=completed: %d rows, want %d", len(rows), completed)
		}
		if rows := export("&received_from=2025-06-01&received_before=2025-07-01"); len(rows) != inJune {
			t.Errorf("June: %d rows, want %d", len(rows), inJune)
		}
		for _, q := range []string{"&status=nope", "&received_from=yesterday", "&status=received&status=failed"} {
			if res := e.do(t, call{method: "GET", path: "/v1/deletion-requests?format=csv" + q, token: e.tokens["vera"]}); res.status != http.StatusBadRequest {
				t.Errorf("export%s: %d", q, res.status)
			}
		}
		if res := e.do(t, call{method: "GET", path: "/v1/deletion-requests?format=xml", token: e.tokens["vera"]}); res.status != http.StatusBadRequest {
			t.Errorf("format=xml: %d", res.status)
		}
	})
}

func TestReceiptList(t *testing.T) {
	t.Parallel()
	testdb.ForEachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		e := newOpEnv(t, st, nil)
		var ids []string
		for i, c := range []string{"client-a", "client-b", "client-a"} {
			id := uuid.Must(uuid.NewV7()).String()
			ids = append(ids, id)
			if err := st.PutReceipt(ctx, store.Receipt{RequestID: id, ClientID: c, KeyID: "k1", Body: []byte("{}"), IssuedAt: time.Unix(int64(1e9+i), 0)}); err != nil {
				t.Fatal(err)
			}
		}
		type page struct {
			Data []struct {
				RequestID string `json:"request_id"`
				ClientID  string `json:"client_id"`
				KeyID     string `json:"key_id"`
				IssuedAt  string `json:"issued_at"`
			} `json:"data"`
			NextCursor string `json:"next_cursor"`
		}
		get := func(tok, query string) page {
			t.Helper()
			res := e.do(t, call{method: "GET", path: "/v1/receipts" + query, token: tok})
			if res.status != http.StatusOK {
				t.Fatalf("receipts%s: %d %s", query, res.status, res.body)
			}
			var p page
			res.decode(t, &p)
			return p
		}
		p1 := get(e.tokens["vera"], "?limit=2")
		if len(p1.Data) != 2 || p1.Data[0].RequestID != ids[2] || p1.Data[1].RequestID != ids[1] || p1.NextCursor == "" {
			t.Fatalf("first page = %+v", p1)
		}
		p2 := get(e.tokens["vera"], "?limit=2&cursor="+p1.NextCursor)
		if len(p2.Data) != 1 || p2.Data[0].RequestID != ids[0] || p2.NextCursor != "" {
			t.Fatalf("second page = %+v", p2)
		}
		if pa := get(clientATok, ""); len(pa.Data) != 2 || pa.Data[0].RequestID != ids[2] || pa.Data[1].RequestID != ids[0] {
			t.Fatalf("client-a's receipts = %+v", pa)
		}
		if res := e.do(t, call{method: "GET", path: "/v1/receipts?cursor=garbage", token: e.tokens["vera"]}); res.status != http.StatusBadRequest {
			t.Errorf("bad cursor: %d", res.status)
		}
	})
}
