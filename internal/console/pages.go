package console

import (
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/operators"
	"github.com/lethe-privacy/lethe/internal/store"
)

// pageSize is how many requests one list page shows.
const pageSize = 50

// overviewDays is the period of the overview's chart and median.
const overviewDays = 90

func (c *Console) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET "+Prefix+"static/", http.StripPrefix(Prefix+"static/", http.FileServerFS(static)))
	m.HandleFunc("GET "+Prefix+"sign-in", c.handleSignInForm)
	m.HandleFunc("POST "+Prefix+"sign-in", c.handleSignIn)
	m.HandleFunc("POST "+Prefix+"sign-out", c.authed(operators.RoleViewer, c.handleSignOut))
	m.HandleFunc("GET "+Prefix+"{$}", c.authed(operators.RoleViewer, c.handleOverview))
	m.HandleFunc("GET "+Prefix+"requests", c.authed(operators.RoleViewer, c.handleRequests))
	m.HandleFunc("GET "+Prefix+"requests/{id}", c.authed(operators.RoleViewer, c.handleRequest))
	m.HandleFunc("GET "+Prefix+"requests/{id}/receipt", c.authed(operators.RoleViewer, c.handleReceiptDownload))
	m.HandleFunc("POST "+Prefix+"requests/{id}/reveal", c.authed(operators.RoleReviewer, c.handleReveal))
	m.HandleFunc("POST "+Prefix+"requests/{id}/{action}", c.authed(operators.RoleReviewer, c.handleAction))
	m.HandleFunc("POST "+Prefix+"requests/{id}/tasks/{target}/{action}", c.authed(operators.RoleReviewer, c.handleTaskAction))
	m.HandleFunc("GET "+Prefix+"import", c.authed(operators.RoleReviewer, c.handleImportPage))
	m.HandleFunc("POST "+Prefix+"import", c.authed(operators.RoleReviewer, c.handleImportUpload))
	m.HandleFunc("POST "+Prefix+"import/submit", c.authed(operators.RoleReviewer, c.handleImportSubmit))
	m.HandleFunc("GET "+Prefix+"import/{id}", c.authed(operators.RoleReviewer, c.handleImportProgressPage))
	m.HandleFunc("GET "+Prefix+"import/{id}/progress", c.authed(operators.RoleReviewer, c.handleImportProgress))
	m.HandleFunc("GET "+Prefix+"export", c.authed(operators.RoleViewer, c.handleExportPage))
	m.HandleFunc("GET "+Prefix+"export/register.csv", c.authed(operators.RoleViewer, c.handleRegisterCSV))
	m.HandleFunc("GET "+Prefix+"export/receipts.zip", c.authed(operators.RoleViewer, c.handleReceiptsZip))
	m.HandleFunc("GET "+Prefix+"admin", c.authed(operators.RoleAdmin, c.handleAdmin))
	m.HandleFunc("POST "+Prefix+"admin/clients/{name}/{action}", c.authed(operators.RoleAdmin, c.handleClientAction))
	m.HandleFunc(Prefix, c.authed(operators.RoleViewer, func(w http.ResponseWriter, r *http.Request, s *session) {
		c.fail(w, r, s, store.ErrNotFound)
	}))
	c.mux = m
}

// overviewView is the overview page's data.
type overviewView struct {
	Open, Held, Failed, DueSoon, Overdue int64
	ShowDeadlines                        bool
	Weeks                                []week
	Chart                                chart
	MedianDays                           string
	Failing                              []failingTarget
}

type week struct {
	Start     time.Time
	Received  int
	Completed int
}

type failingTarget struct {
	Target string
	Tasks  int
}

func (c *Console) handleOverview(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	counts, err := c.opts.Store.CountRequestsByStatus(ctx)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	v := overviewView{
		Open:   counts[lethe.StatusReceived] + counts[lethe.StatusRunning] + counts[lethe.StatusHeld],
		Held:   counts[lethe.StatusHeld],
		Failed: counts[lethe.StatusFailed],
	}
	if c.opts.Deadlines != nil {
		if v.DueSoon, v.Overdue, err = c.opts.Deadlines(ctx); err != nil {
			c.fail(w, r, s, err)
			return
		}
		v.ShowDeadlines = true
	}
	now := c.opts.Now().UTC()
	from := startOfWeek(now.AddDate(0, 0, -overviewDays))
	for t := from; !t.After(now); t = t.AddDate(0, 0, 7) {
		v.Weeks = append(v.Weeks, week{Start: t})
	}
	activity, err := c.opts.Store.RegisterActivity(ctx, from)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	var durations []time.Duration
	for _, e := range activity {
		if i := int(e.ReceivedAt.Sub(from) / (7 * 24 * time.Hour)); i >= 0 && i < len(v.Weeks) {
			v.Weeks[i].Received++
			if e.Status == lethe.StatusCompleted {
				v.Weeks[i].Completed++
			}
		}
		if e.Status == lethe.StatusCompleted && !e.ClosedAt.IsZero() {
			durations = append(durations, e.ClosedAt.Sub(e.ReceivedAt))
		}
	}
	failing, err := c.opts.Store.FailingTasks(ctx)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	v.Chart = weeklyChart(v.Weeks)
	v.MedianDays = "—"
	if len(durations) > 0 {
		slices.Sort(durations)
		v.MedianDays = humanDuration(durations[len(durations)/2])
	}
	for t, n := range failing {
		v.Failing = append(v.Failing, failingTarget{Target: t, Tasks: n})
	}
	sort.Slice(v.Failing, func(i, j int) bool { return v.Failing[i].Tasks > v.Failing[j].Tasks })
	c.render(w, http.StatusOK, "overview", page{Title: "Overview", Operator: s.principal, CSRF: s.csrf, Data: v})
}

func startOfWeek(t time.Time) time.Time {
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	return d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7)) // weeks start on Monday
}

// listView is the request list's data.
type listView struct {
	Filter     listFilter
	Entries    []store.RegisterEntry
	Next       string // query string of the next page; "" on the last
	Statuses   []lethe.Status
	Regs       []lethe.Regulation
	Targets    []Target
	FirstPage  string
	IsFiltered bool
}

// listFilter is the request list's query, as the form sends it.
type listFilter struct {
	Status, Client, Regulation, DueBefore, Target string
	Overdue                                       bool
	After                                         string
}

func (f listFilter) query() url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("status", f.Status)
	set("client", f.Client)
	set("regulation", f.Regulation)
	set("due_before", f.DueBefore)
	set("target", f.Target)
	if f.Overdue {
		q.Set("overdue", "1")
	}
	set("after", f.After)
	return q
}

func (c *Console) handleRequests(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	lf := listFilter{
		Status: q.Get("status"), Client: q.Get("client"), Regulation: q.Get("regulation"),
		DueBefore: q.Get("due_before"), Target: q.Get("target"), Overdue: q.Get("overdue") == "1", After: q.Get("after"),
	}
	f := store.RegisterFilter{Scope: store.Scope{All: true}, Limit: pageSize + 1, Newest: true, After: lf.After,
		ClientID: lf.Client, FailingTarget: lf.Target}
	if lf.Status != "" {
		st := lethe.Status(lf.Status)
		if !st.Valid() {
			c.fail(w, r, s, lethe.Errorf(lethe.EINVALID, "Unknown status."))
			return
		}
		f.Status = st
	}
	if lf.Regulation != "" {
		reg := lethe.Regulation(lf.Regulation)
		if _, ok := lethe.DefaultDeadlines[reg]; !ok {
			c.fail(w, r, s, lethe.Errorf(lethe.EINVALID, "Unknown regulation."))
			return
		}
		f.Regulation = reg
	}
	if lf.DueBefore != "" {
		t, err := time.Parse("2006-01-02", lf.DueBefore)
		if err != nil {
			c.fail(w, r, s, lethe.Errorf(lethe.EINVALID, "Due before must be a date (YYYY-MM-DD)."))
			return
		}
		f.DueBefore = t
	}
	if lf.Overdue {
		f.Open, f.DueBefore = true, c.opts.Now()
	}
	entries, err := c.opts.Store.RegisterPage(r.Context(), f)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	v := listView{Filter: lf, Statuses: lethe.Statuses, Regs: regulations(), Targets: c.opts.Targets}
	if len(entries) > pageSize {
		entries = entries[:pageSize]
		next := lf
		next.After = entries[len(entries)-1].RequestID
		v.Next = next.query().Encode()
	}
	first := lf
	first.After = ""
	v.FirstPage = first.query().Encode()
	v.IsFiltered = v.FirstPage != ""
	v.Entries = entries
	c.render(w, http.StatusOK, "requests", page{Title: "Requests", Operator: s.principal, CSRF: s.csrf, Data: v})
}

// requestView is a request page's data.
type requestView struct {
	Entry       store.RegisterEntry
	Request     *lethe.Request // nil once its details were purged
	Tasks       []lethe.Task
	Timeline    []timelineEntry
	Identities  []shownIdentity
	Revealed    bool
	Receipt     *receiptView
	Actions     []string // the request actions this operator may take now
	TaskAction  map[string][]string
	DenyReasons []lethe.DenyReason
	Holds       []store.Hold
	CanReveal   bool
	Flash       string
}

type shownIdentity struct {
	Type  lethe.IdentityType
	Value string
}

type receiptView struct {
	Status   lethe.Status
	Verified bool
	Problem  string
}

func (c *Console) handleRequest(w http.ResponseWriter, r *http.Request, s *session) {
	c.showRequest(w, r, s, false, r.URL.Query().Get("done"))
}

// showRequest renders a request page; reveal shows its identities in full
// (the caller has audited it).
func (c *Console) showRequest(w http.ResponseWriter, r *http.Request, s *session, reveal bool, flash string) {
	ctx := r.Context()
	id := r.PathValue("id")
	entry, err := c.registerEntry(r, id)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	v := requestView{Entry: entry, Revealed: reveal, Flash: actionFlash(flash)}
	if !entry.Archived {
		req, err := c.opts.Store.GetRequest(ctx, id, store.Scope{All: true})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			c.fail(w, r, s, err)
			return
		}
		v.Request = req
	}
	if v.Request != nil {
		if v.Tasks, err = c.opts.Store.ListTasks(ctx, id); err != nil {
			c.fail(w, r, s, err)
			return
		}
		events, err := c.opts.Store.ListAudit(ctx, id)
		if err != nil {
			c.fail(w, r, s, err)
			return
		}
		v.Timeline = timeline(events)
		if v.Request.Status.Open() || v.Request.Status == lethe.StatusFailed {
			ids, err := c.opts.Store.RequestIdentities(ctx, id)
			if err != nil {
				c.fail(w, r, s, err)
				return
			}
			for _, i := range ids {
				shown := shownIdentity{Type: i.Type, Value: mask(i)}
				if reveal {
					shown.Value = i.Value
				}
				v.Identities = append(v.Identities, shown)
			}
		}
		if c.opts.Actions != nil {
			if v.Holds, err = c.opts.Actions.Holds(ctx, id); err != nil {
				c.fail(w, r, s, err)
				return
			}
		}
		v.Actions, v.TaskAction = c.allowedActions(s.principal, v.Request, v.Tasks, v.Holds)
		v.DenyReasons = lethe.DenyReasons
		v.CanReveal = s.principal.Can(operators.RoleReviewer)
	}
	if rec, err := c.opts.Store.GetReceipt(ctx, id, store.Scope{All: true}); err == nil {
		v.Receipt = c.verifyReceipt(r, rec.Body)
	} else if !errors.Is(err, store.ErrNotFound) {
		c.fail(w, r, s, err)
		return
	}
	c.render(w, http.StatusOK, "request", page{Title: "Request " + shortID(id), Operator: s.principal, CSRF: s.csrf, Data: v})
}

// registerEntry returns a request's register entry (live or archived).
func (c *Console) registerEntry(r *http.Request, id string) (store.RegisterEntry, error) {
	if !validID(id) {
		return store.RegisterEntry{}, store.ErrNotFound
	}
	// The register is ordered by id, so the entry after the id just
	// before this one is this one, if it exists.
	entries, err := c.opts.Store.RegisterPage(r.Context(), store.RegisterFilter{Scope: store.Scope{All: true}, After: idBefore(id), Limit: 1})
	if err != nil {
		return store.RegisterEntry{}, err
	}
	if len(entries) == 0 || entries[0].RequestID != id {
		return store.RegisterEntry{}, store.ErrNotFound
	}
	return entries[0], nil
}

// idBefore returns a string that sorts immediately before id among
// request ids (UUIDs in lower-case hex and dashes).
func idBefore(id string) string {
	b := []byte(id)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] > '0' && b[i] != '-' {
			b[i]--
			if b[i] == '`' { // 'a' - 1: the hex digit before 'a' is '9'
				b[i] = '9'
			}
			return string(b[:i+1]) + "~"
		}
	}
	return ""
}

// validID accepts the shape of request ids (UUIDs) only, so no path value
// reaches a query or a page unchecked.
func validID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i, ch := range id {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if ch != '-' {
				return false
			}
		case ch >= '0' && ch <= '9', ch >= 'a' && ch <= 'f':
		default:
			return false
		}
	}
	return true
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func (c *Console) verifyReceipt(r *http.Request, body []byte) *receiptView {
	keys, err := audit.KeyMap(r.Context(), c.opts.Store)
	if err != nil {
		return &receiptView{Problem: "the published keys could not be read"}
	}
	rc, err := audit.Verify(body, keys)
	if err != nil {
		return &receiptView{Problem: "it does not verify against the published keys"}
	}
	return &receiptView{Status: rc.Status, Verified: true}
}

func (c *Console) handleReceiptDownload(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	if !validID(id) {
		c.fail(w, r, s, store.ErrNotFound)
		return
	}
	rec, err := c.opts.Store.GetReceipt(r.Context(), id, store.Scope{All: true})
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", `attachment; filename="receipt-`+id+`.json"`)
	_, _ = w.Write(rec.Body)
}

// handleReveal shows a request's identities in full, once, and audits
// that this operator saw them.
func (c *Console) handleReveal(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	if !validID(id) {
		c.fail(w, r, s, store.ErrNotFound)
		return
	}
	actor, actorID := operators.Actor(r.Context())
	err := c.opts.Store.InTx(r.Context(), func(tx store.Tx) error {
		req, err := tx.LockRequest(r.Context(), id)
		if err != nil {
			return err
		}
		if !req.Status.Open() && req.Status != lethe.StatusFailed {
			return lethe.Errorf(lethe.ECONFLICT, "This request has closed; lethe no longer holds its identities.")
		}
		return tx.AppendAudit(r.Context(), &lethe.AuditEvent{
			RequestID: id, Time: c.opts.Now(), Actor: actor, ActorID: actorID, Type: lethe.EventIdentitiesRevealed,
		})
	})
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	c.showRequest(w, r, s, true, "")
}

// humanDuration is a duration as a privacy officer reads it.
func humanDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + " s"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + " min"
	case d < 48*time.Hour:
		return strconv.FormatFloat(d.Hours(), 'f', 1, 64) + " h"
	}
	return strconv.FormatFloat(d.Hours()/24, 'f', 1, 64) + " days"
}

// regulations lists the regulations lethe knows, in a stable order.
func regulations() []lethe.Regulation {
	out := make([]lethe.Regulation, 0, len(lethe.DefaultDeadlines))
	for r := range lethe.DefaultDeadlines {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}
