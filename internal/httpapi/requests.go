package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/http/auth"
	"github.com/lethe-privacy/lethe/internal/http/request"
	"github.com/lethe-privacy/lethe/internal/intake"
	"github.com/lethe-privacy/lethe/internal/store"
)

// Page sizes of GET /v1/deletion-requests.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
	// maxCursorLen refuses absurd cursors before they reach the store.
	maxCursorLen = 512
)

// createBody is the body of POST /v1/deletion-requests. Unknown members are
// rejected (see UnmarshalStrict): a misspelt "callback_url" silently ignored
// would lose the callback.
type createBody struct {
	Identities  []identityBody `json:"identities"`
	Regulation  string         `json:"regulation,omitempty"`
	ExternalID  string         `json:"external_id,omitempty"`
	CallbackURL string         `json:"callback_url,omitempty"`
}

type identityBody struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// handleCreate submits a request. 202 with the new request; 200 with the
// open request that already stands for the same subject (duplicate); for
// a retried Idempotency-Key, the status of the first answer with the
// request as it is now. Only a created request keeps its key, so a replay
// is always of a 202; a key first sent with a duplicate is answered 200
// again while that request stays open (and creates one if it has closed).
func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	dryRun, err := s.dryRunRequested(r, p)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var body createBody
	if err := request.DecodeJSON(r, s.maxBody, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	keys := r.Header.Values("Idempotency-Key")
	if len(keys) > 1 {
		s.writeError(w, r, lethe.Errorf(lethe.EINVALID, "Idempotency-Key may be given once"))
		return
	}
	var key string
	if len(keys) == 1 {
		key = keys[0]
		if key == "" {
			s.writeError(w, r, lethe.Errorf(lethe.EINVALID, "Idempotency-Key must not be empty"))
			return
		}
	}
	ids := make([]lethe.Identity, len(body.Identities))
	for i, id := range body.Identities {
		ids[i] = lethe.Identity{Type: lethe.IdentityType(id.Type), Value: id.Value}
	}
	actor, _ := p.Actor()
	if actor == lethe.ActorOperator {
		actor = lethe.ActorAdmin // intake knows submitters as the admin or a client
	}
	sub := intake.Submission{
		Actor:          actor,
		ClientID:       p.ClientID,
		Identities:     ids,
		Regulation:     lethe.Regulation(body.Regulation),
		ExternalID:     body.ExternalID,
		IdempotencyKey: key,
		CallbackURL:    body.CallbackURL,
	}
	if dryRun {
		s.handleDryRun(w, r, sub)
		return
	}
	req, outcome, err := s.intake.Submit(r.Context(), sub)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status := http.StatusAccepted
	switch outcome {
	case intake.Created:
		w.Header().Set("Location", "/v1/deletion-requests/"+req.ID)
		s.writeJSON(w, r, status, viewFor(p, newRequestView(req)))
		return
	case intake.Duplicate:
		status = http.StatusOK
	case intake.Replayed:
		w.Header().Set("Idempotent-Replayed", "true")
		w.Header().Set("Location", "/v1/deletion-requests/"+req.ID)
	}
	// Re-read so the answer shows the request's current state and tasks.
	cur, err := s.store.GetRequest(r.Context(), req.ID, p.Scope())
	if err != nil {
		s.writeError(w, r, fmt.Errorf("read submitted request: %w", err))
		return
	}
	s.writeJSON(w, r, status, viewFor(p, newRequestView(cur)))
}

// handleGet answers one request with its tasks. A malformed id and
// another client's request are both 404, so ids reveal nothing.
func (s *Server) handleGet(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id, ok := pathRequestID(r)
	if !ok {
		s.writeError(w, r, errRequestNotFound())
		return
	}
	req, err := s.store.GetRequest(r.Context(), id, p.Scope())
	if errors.Is(err, store.ErrNotFound) {
		s.writeError(w, r, errRequestNotFound())
		return
	} else if err != nil {
		s.writeError(w, r, fmt.Errorf("get request: %w", err))
		return
	}
	s.writeRequestDetail(w, r, req, p) // callbacks.go: the view with its callbacks
}

// pageLimit reads a list's limit parameter: DefaultPageSize when absent.
func pageLimit(v string) (int, error) {
	if v == "" {
		return DefaultPageSize, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxPageSize {
		return 0, lethe.Errorf(lethe.EINVALID, "limit must be an integer from 1 to %d", MaxPageSize)
	}
	return n, nil
}

// listPage is the answer of GET /v1/deletion-requests. NextCursor is
// absent on the last page.
type listPage struct {
	Data       []requestSummary `json:"data"`
	NextCursor string           `json:"next_cursor,omitempty"`
}

// handleList answers a page of requests, newest first. Unknown query
// parameters are ignored; known ones given twice are an error, since
// picking one would be a guess.
func (s *Server) handleList(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		s.writeError(w, r, lethe.Errorf(lethe.EINVALID, "query string is malformed"))
		return
	}
	get := func(name string) (string, error) {
		vs := q[name]
		if len(vs) > 1 {
			return "", lethe.Errorf(lethe.EINVALID, "query parameter %s may be given once", name)
		}
		if len(vs) == 0 {
			return "", nil
		}
		return vs[0], nil
	}
	format, err := get("format")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	switch format {
	case "", "json":
	case "csv":
		s.handleRegisterCSV(w, r, p, get) // register.go
		return
	default:
		s.writeError(w, r, lethe.Errorf(lethe.EINVALID, "format must be json or csv"))
		return
	}
	f := store.ListFilter{Scope: p.Scope()}
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
	// filterKey binds cursors to the filters as given (not to the time
	// overdue=true resolves to, which moves between pages).
	filterKey := string(f.Status)
	if err := s.deadlineFilters(&f, get, &filterKey); err != nil {
		s.writeError(w, r, err)
		return
	}
	limit, err := get("limit")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if f.Limit, err = pageLimit(limit); err != nil {
		s.writeError(w, r, err)
		return
	}
	cursor, err := get("cursor")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if cursor != "" {
		if f.Cursor, err = openCursor(cursor, filterKey); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	reqs, next, err := s.store.ListRequests(r.Context(), f)
	if err != nil {
		if lethe.ErrorCode(err) == lethe.EINVALID {
			// The store's only invalid input here is the cursor; its own
			// message is not relied on to stay free of the cursor's bytes.
			err = errBadCursor()
		} else {
			err = fmt.Errorf("list requests: %w", err)
		}
		s.writeError(w, r, err)
		return
	}
	page := listPage{Data: make([]requestSummary, len(reqs))}
	if next != "" {
		page.NextCursor = sealCursor(next, filterKey)
	}
	for i, req := range reqs {
		page.Data[i] = newRequestSummary(req)
	}
	s.writeJSON(w, r, http.StatusOK, page)
}

// handleCancel cancels a request that has not started erasing: 200 with
// the canceled request, 409 once erasure started or the request ended.
func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id, ok := pathRequestID(r)
	if !ok {
		s.writeError(w, r, errRequestNotFound())
		return
	}
	actor, actorID := p.Actor()
	req, err := s.intake.Cancel(r.Context(), p.Scope(), id, actor, actorID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, viewFor(p, newRequestView(req)))
}

// The API's cursor wraps the store's with a checksum over it and the
// filters (status, overdue, due_before, as given), so a cursor that was altered, truncated, or reused with
// another filter is a clear 400 instead of a silently different page. It
// is not a security boundary and needs no key: every page is read within
// the caller's scope, whatever the cursor says.
const cursorSumLen = 8

func cursorSum(storeCursor, filters string) []byte {
	h := sha256.New()
	h.Write([]byte("lethe/httpapi/cursor/v1\x00"))
	h.Write([]byte(filters))
	h.Write([]byte{0})
	h.Write([]byte(storeCursor))
	return h.Sum(nil)[:cursorSumLen]
}

func sealCursor(storeCursor, filters string) string {
	b := append(cursorSum(storeCursor, filters), storeCursor...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func openCursor(c, filters string) (string, error) {
	if len(c) > maxCursorLen {
		return "", errBadCursor()
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(c)
	if err != nil || len(b) <= cursorSumLen {
		return "", errBadCursor()
	}
	storeCursor := string(b[cursorSumLen:])
	if !bytes.Equal(b[:cursorSumLen], cursorSum(storeCursor, filters)) {
		return "", errBadCursor()
	}
	return storeCursor, nil
}

func errRequestNotFound() error {
	return lethe.Errorf(lethe.ENOTFOUND, "deletion request not found")
}

func errBadCursor() error {
	return lethe.Errorf(lethe.EINVALID, "cursor is not valid: pass the next_cursor of a previous page unchanged")
}

// pathRequestID returns the {id} path value when it is a request id in its
// canonical form (lower-case UUID): anything else cannot exist, and
// answering it the same as a missing id says nothing about which ids do.
func pathRequestID(r *http.Request) (string, bool) {
	id := r.PathValue("id")
	u, err := uuid.Parse(id)
	if err != nil || u.String() != id {
		return "", false
	}
	return id, true
}

func statusNames() string {
	names := make([]string, len(lethe.Statuses))
	for i, st := range lethe.Statuses {
		names[i] = string(st)
	}
	return strings.Join(names, ", ")
}

// requestSummary is a request without its tasks, as lists show it. It
// never holds identities, their hashes, the idempotency key or the
// callback URL.
type requestSummary struct {
	ID string `json:"id"`
	// ClientID is the client that submitted the request; absent when the
	// admin or an operator did.
	ClientID    string           `json:"client_id,omitempty"`
	Status      lethe.Status     `json:"status"`
	Outcome     lethe.Outcome    `json:"outcome,omitempty"`
	Regulation  lethe.Regulation `json:"regulation"`
	ExternalID  string           `json:"external_id,omitempty"`
	ReceivedAt  string           `json:"received_at"`
	DueAt       string           `json:"due_at"`
	StartedAt   string           `json:"started_at,omitempty"`
	CompletedAt string           `json:"completed_at,omitempty"`
}

// requestView is one request with its per-target tasks.
type requestView struct {
	requestSummary
	// Reach is how far the subject's identities reached in resolve:
	// accounts per target/object and where values were not followed.
	Reach *lethe.Reach `json:"reach,omitempty"`
	// Extension is the request's one deadline extension, when it has one
	// (filled by the routes that read it: GET and extend).
	Extension *extensionView `json:"extension,omitempty"`
	Tasks     []taskView     `json:"tasks"`
}

type taskView struct {
	Target     string          `json:"target"`
	State      lethe.TaskState `json:"state"`
	Attempts   int             `json:"attempts"`
	LastError  string          `json:"last_error,omitempty"`
	Report     *reportView     `json:"report,omitempty"`
	StartedAt  string          `json:"started_at,omitempty"`
	FinishedAt string          `json:"finished_at,omitempty"`
}

type reportView struct {
	Items []reportItemView `json:"items"`
}

type reportItemView struct {
	Object string       `json:"object"`
	Action lethe.Action `json:"action"`
	Rows   int64        `json:"rows"`
	Reason string       `json:"reason,omitempty"`
	Until  string       `json:"until,omitempty"`
}

func newRequestSummary(r *lethe.Request) requestSummary {
	return requestSummary{
		ID:          r.ID,
		ClientID:    r.ClientID,
		Status:      r.Status,
		Outcome:     r.Outcome,
		Regulation:  r.Regulation,
		ExternalID:  r.ExternalID,
		ReceivedAt:  formatTime(r.ReceivedAt),
		DueAt:       formatTime(r.DueAt),
		StartedAt:   formatTime(r.StartedAt),
		CompletedAt: formatTime(r.CompletedAt),
	}
}

func newRequestView(r *lethe.Request) requestView {
	v := requestView{requestSummary: newRequestSummary(r), Reach: r.Reach, Tasks: make([]taskView, len(r.Tasks))}
	for i, t := range r.Tasks {
		tv := taskView{
			Target:     t.Target,
			State:      t.State,
			Attempts:   t.Attempts,
			LastError:  t.LastError,
			Report:     &reportView{Items: make([]reportItemView, len(t.Report.Items))},
			StartedAt:  formatTime(t.StartedAt),
			FinishedAt: formatTime(t.FinishedAt),
		}
		for j, it := range t.Report.Items {
			tv.Report.Items[j] = reportItemView{
				Object: it.Object, Action: it.Action, Rows: it.Rows, Reason: it.Reason, Until: formatTime(it.Until),
			}
		}
		v.Tasks[i] = tv
	}
	return v
}

// formatTime renders RFC 3339 in UTC; the zero time is "" so that
// omitempty drops it.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// viewFor trims v to what p may see. A partner (client) sees its request's
// state and outcome, per target only the state: row counts per object,
// retention reasons, how far the identities reached and target errors tell
// it what the company holds on a person, so they are for operators only.
func viewFor(p auth.Principal, v requestView) requestView {
	if p.Admin {
		return v
	}
	v.Reach = nil
	if v.Extension != nil {
		e := *v.Extension
		e.By = ""
		v.Extension = &e
	}
	tasks := make([]taskView, len(v.Tasks))
	for i, t := range v.Tasks {
		t.Report, t.LastError = nil, ""
		tasks[i] = t
	}
	v.Tasks = tasks
	return v
}
