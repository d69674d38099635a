package httpapi

import (
	"encoding/csv"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/http/auth"
	"github.com/lethe-privacy/lethe/internal/store"
)

// registerPage is how many register entries one store read takes while
// the CSV export streams.
const registerPage = 1000

// RegisterColumns is the header row of the register export (GET
// /v1/deletion-requests?format=csv and lethe requests export --csv). No
// column holds an identity or the partner's external id.
var RegisterColumns = []string{
	"request_id", "client_id", "regulation", "status", "outcome",
	"received_at", "due_at", "extended_from", "closed_at", "targets", "operator_actions",
}

// RegisterRow is the CSV row of one register entry: targets as
// "target:state" and operator actions as "time type actor[:name]", each
// joined by ";".
func RegisterRow(e store.RegisterEntry) []string {
	targets := make([]string, len(e.Targets))
	for i, t := range e.Targets {
		targets[i] = t.Target + ":" + string(t.State)
	}
	actions := make([]string, len(e.Actions))
	for i, a := range e.Actions {
		who := string(a.Actor)
		if a.ActorID != "" {
			who += ":" + a.ActorID
		}
		actions[i] = formatTime(a.Time) + " " + string(a.Type) + " " + who
	}
	return []string{
		e.RequestID, e.ClientID, string(e.Regulation), string(e.Status), string(e.Outcome),
		formatTime(e.ReceivedAt), formatTime(e.DueAt), formatTime(e.ExtendedFrom), formatTime(e.ClosedAt),
		strings.Join(targets, ";"), strings.Join(actions, ";"),
	}
}

// handleRegisterCSV streams the whole request register, live and purged
// requests alike, oldest first, filtered by received_from,
// received_before (RFC 3339 or YYYY-MM-DD) and status. Operators only.
// The answer streams: a store error after the first row aborts the
// connection, so a cut export never looks complete.
func (s *Server) handleRegisterCSV(w http.ResponseWriter, r *http.Request, p auth.Principal, get func(string) (string, error)) {
	if !s.operatorOnly(w, r, p) {
		return
	}
	f := store.RegisterFilter{Scope: p.Scope(), Limit: registerPage}
	for _, b := range []struct {
		name string
		t    *time.Time
	}{{"received_from", &f.ReceivedFrom}, {"received_before", &f.ReceivedBefore}} {
		v, err := get(b.name)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if v == "" {
			continue
		}
		if *b.t, err = parseDateOrTime(v); err != nil {
			s.writeError(w, r, lethe.Errorf(lethe.EINVALID, "%s must be an RFC 3339 time or a YYYY-MM-DD date", b.name))
			return
		}
	}
	status, err := get("status")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if status != "" {
		f.Status = lethe.Status(status)
		if !f.Status.Valid() {
			s.writeError(w, r, lethe.Errorf(lethe.EINVALID, "status must be one of %s", statusNames()))
			return
		}
	}
	if err := WriteRegisterCSV(w, r, s.store, f, s.log); err != nil {
		s.writeError(w, r, fmt.Errorf("register: %w", err))
	}
}

// WriteRegisterCSV streams the register entries f selects as CSV, page by
// page (f.Limit each). The first page is read before anything is written,
// so its error is returned for the caller to answer in its own shape; a
// store error after the first row aborts the connection, so a cut export
// never looks complete.
func WriteRegisterCSV(w http.ResponseWriter, r *http.Request, st store.Register, f store.RegisterFilter, log *slog.Logger) error {
	page, err := st.RegisterPage(r.Context(), f)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="lethe-register.csv"`)
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	_ = cw.Write(RegisterColumns)
	rc := http.NewResponseController(w)
	for {
		for _, e := range page {
			_ = cw.Write(RegisterRow(e))
		}
		cw.Flush()
		if cw.Error() != nil {
			return nil // the client left
		}
		_ = rc.Flush()
		if len(page) < f.Limit {
			return nil
		}
		f.After = page[len(page)-1].RequestID
		if page, err = st.RegisterPage(r.Context(), f); err != nil {
			log.ErrorContext(r.Context(), "register export cut short", "err", err.Error())
			panic(http.ErrAbortHandler)
		}
	}
}

// receiptSummary is one receipt in GET /v1/receipts; the document itself
// is at GET /v1/deletion-requests/{id}/receipt.
type receiptSummary struct {
	RequestID string `json:"request_id"`
	ClientID  string `json:"client_id,omitempty"`
	KeyID     string `json:"key_id"`
	IssuedAt  string `json:"issued_at"`
}

type receiptPage struct {
	Data       []receiptSummary `json:"data"`
	NextCursor string           `json:"next_cursor,omitempty"`
}

// handleReceiptList lists receipts, newest request first, within the
// caller's scope, for as long as they are kept (retention.legal), after
// the requests' details are purged too.
func (s *Server) handleReceiptList(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		s.writeError(w, r, lethe.Errorf(lethe.EINVALID, "query string is malformed"))
		return
	}
	limit, err := pageLimit(q.Get("limit"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	before := ""
	if c := q.Get("cursor"); c != "" {
		if before, err = openCursor(c, "receipts"); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	rs, err := s.store.ListReceipts(r.Context(), p.Scope(), before, limit+1)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("list receipts: %w", err))
		return
	}
	page := receiptPage{Data: []receiptSummary{}}
	if len(rs) > limit {
		rs = rs[:limit]
		page.NextCursor = sealCursor(rs[limit-1].RequestID, "receipts")
	}
	for _, rc := range rs {
		page.Data = append(page.Data, receiptSummary{
			RequestID: rc.RequestID, ClientID: rc.ClientID, KeyID: rc.KeyID, IssuedAt: formatTime(rc.IssuedAt),
		})
	}
	s.writeJSON(w, r, http.StatusOK, page)
}
