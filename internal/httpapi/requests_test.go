package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/http/auth"
	httpresponse "github.com/lethe-privacy/lethe/internal/http/response"
	"github.com/lethe-privacy/lethe/internal/store"
)

const validBody = `{"identities":[{"type":"email","value":"a@example.com"}]}`

// TestCreateBadInput: every malformed submission gets a clear 4xx in the
// native shape and stores nothing.
func TestCreateBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	big := `{"identities":[{"type":"email","value":"a@example.com"}],"external_id":"` + strings.Repeat("x", 70<<10) + `"}`
	tests := []struct {
		name        string
		body        string
		contentType string
		header      map[string]string
		status      int
		code        string
	}{
		{name: "malformed JSON", body: `{"identities":`, status: 400, code: lethe.EINVALID},
		{name: "not JSON", body: `identities=a@example.com`, status: 400, code: lethe.EINVALID},
		{name: "identities not an array", body: `{"identities":"a@example.com"}`, status: 400, code: lethe.EINVALID},
		{name: "type not a string", body: `{"identities":[{"type":1,"value":"a@example.com"}]}`, status: 400, code: lethe.EINVALID},
		{name: "regulation not a string", body: `{"identities":[{"type":"email","value":"a@example.com"}],"regulation":true}`, status: 400, code: lethe.EINVALID},
		{name: "unknown field", body: `{"identities":[{"type":"email","value":"a@example.com"}],"callbak_url":"https://x.example"}`, status: 400, code: lethe.EINVALID},
		{name: "unknown nested field", body: `{"identities":[{"type":"email","value":"a@example.com","extra":1}]}`, status: 400, code: lethe.EINVALID},
		{name: "trailing object", body: validBody + `{}`, status: 400, code: lethe.EINVALID},
		{name: "trailing garbage", body: validBody + ` x`, status: 400, code: lethe.EINVALID},
		{name: "duplicate key", body: `{"identities":[{"type":"email","value":"a@example.com"}],"identities":[{"type":"email","value":"b@example.com"}]}`, status: 400, code: lethe.EINVALID},
		{name: "duplicate key by case", body: `{"identities":[{"type":"email","value":"a@example.com"}],"regulation":"gdpr","Regulation":"ccpa"}`, status: 400, code: lethe.EINVALID},
		{name: "duplicate nested key", body: `{"identities":[{"type":"email","value":"a@example.com","value":"b@example.com"}]}`, status: 400, code: lethe.EINVALID},
		{name: "invalid UTF-8", body: "{\"identities\":[{\"type\":\"email\",\"value\":\"a\xff@example.com\"}]}", status: 400, code: lethe.EINVALID},
		{name: "unknown identity type", body: `{"identities":[{"type":"passport","value":"X123"}]}`, status: 400, code: lethe.EINVALID},
		{name: "empty identity list", body: `{"identities":[]}`, status: 400, code: lethe.EINVALID},
		{name: "no identities", body: `{}`, status: 400, code: lethe.EINVALID},
		{name: "invalid email", body: `{"identities":[{"type":"email","value":"not-an-email"}]}`, status: 400, code: lethe.EINVALID},
		{name: "invalid phone", body: `{"identities":[{"type":"phone","value":"12345"}]}`, status: 400, code: lethe.EINVALID},
		{name: "unknown regulation", body: `{"identities":[{"type":"email","value":"a@example.com"}],"regulation":"lgpd"}`, status: 400, code: lethe.EINVALID},
		{name: "bad callback", body: `{"identities":[{"type":"email","value":"a@example.com"}],"callback_url":"ftp://x"}`, status: 400, code: lethe.EINVALID},
		{name: "callback to metadata address", body: `{"identities":[{"type":"email","value":"a@example.com"}],"callback_url":"https://169.254.169.254/latest"}`, status: 400, code: lethe.EINVALID},
		{name: "callback over plain http", body: `{"identities":[{"type":"email","value":"a@example.com"}],"callback_url":"http://hooks.example/cb"}`, status: 400, code: lethe.EINVALID},
		{name: "callback with credentials", body: `{"identities":[{"type":"email","value":"a@example.com"}],"callback_url":"https://u:p@hooks.example/cb"}`, status: 400, code: lethe.EINVALID},
		{name: "top-level array", body: `[` + validBody + `]`, status: 400, code: lethe.EINVALID},
		{name: "top-level null", body: `null`, status: 400, code: lethe.EINVALID},
		{name: "too deep", body: `{"identities":[{"type":"email","value":"a@example.com"}],"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, status: 400, code: lethe.EINVALID},
		{name: "body over 64 KiB", body: big, status: 413, code: lethe.ETOOLARGE},
		{name: "missing body", body: "", contentType: "application/json", status: 400, code: lethe.EINVALID},
		{name: "whitespace body", body: "  \n", status: 400, code: lethe.EINVALID},
		{name: "text/plain", body: validBody, contentType: "text/plain", status: 415, code: lethe.EUNSUPPORTED},
		{name: "form", body: validBody, contentType: "application/x-www-form-urlencoded", status: 415, code: lethe.EUNSUPPORTED},
		{name: "latin1 charset", body: validBody, contentType: "application/json; charset=iso-8859-1", status: 415, code: lethe.EUNSUPPORTED},
		{name: "no content type", body: validBody, contentType: "-", status: 415, code: lethe.EUNSUPPORTED},
		{name: "idempotency key twice", body: validBody, header: map[string]string{"Idempotency-Key": "k"}, status: 400, code: lethe.EINVALID},
		{name: "idempotency key too long", body: validBody, header: map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}, status: 400, code: lethe.EINVALID},
		// References must not carry an identity (the body is checked not
		// to quote it below).
		{name: "identity in external_id", body: `{"identities":[{"type":"email","value":"a@example.com"}],"external_id":"A%40EXAMPLE.COM"}`, status: 400, code: lethe.EINVALID},
		{name: "identity in callback_url", body: `{"identities":[{"type":"email","value":"a@example.com"}],"callback_url":"https://hooks.example/cb?e=a%40example.com"}`, status: 400, code: lethe.EINVALID},
		{name: "identity in idempotency key", body: validBody, header: map[string]string{"Idempotency-Key": "a@example.com"}, status: 400, code: lethe.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("POST", "/v1/deletion-requests", strings.NewReader(tt.body))
			r.Header.Set("Authorization", "Bearer "+adminTok)
			switch {
			case tt.contentType == "-":
			case tt.contentType != "":
				r.Header.Set("Content-Type", tt.contentType)
			default:
				r.Header.Set("Content-Type", "application/json")
			}
			for k, v := range tt.header {
				r.Header.Add(k, v)
			}
			if tt.name == "idempotency key twice" {
				r.Header.Add("Idempotency-Key", "k2")
			}
			w := httptest.NewRecorder()
			e.srv.Handler().ServeHTTP(w, r)
			res := answer{status: w.Code, header: w.Header(), body: w.Body.Bytes()}
			if res.status != tt.status {
				t.Fatalf("status = %d, want %d; body %s", res.status, tt.status, res.body)
			}
			if got := res.errorCode(t); got != tt.code {
				t.Errorf("code = %q, want %q", got, tt.code)
			}
			if strings.HasPrefix(tt.name, "identity in") && strings.Contains(strings.ToLower(string(res.body)), "example.com") {
				t.Errorf("refusal quotes the value: %s", res.body)
			}
			if n := e.countRequests(t); n != 0 {
				t.Errorf("%d requests stored, want 0", n)
			}
		})
	}
}

// TestCreateTooLargeNotRead: a declared oversized body is refused from
// Content-Length alone; an undeclared one is read no further than the cap.
func TestCreateTooLargeNotRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, declared := range []bool{true, false} {
		body := &countingReader{n: 10 << 20}
		r := httptest.NewRequest("POST", "/v1/deletion-requests", body)
		r.Header.Set("Authorization", "Bearer "+adminTok)
		r.Header.Set("Content-Type", "application/json")
		r.ContentLength = -1
		if declared {
			r.ContentLength = body.n
		}
		w := httptest.NewRecorder()
		e.srv.Handler().ServeHTTP(w, r)
		if w.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("declared=%v: status = %d, want 413", declared, w.Code)
		}
		limit := int64(DefaultMaxBodyBytes + 1)
		if declared {
			limit = 0
		}
		if body.read > limit {
			t.Errorf("declared=%v: read %d bytes, want at most %d", declared, body.read, limit)
		}
	}
	if n := e.countRequests(t); n != 0 {
		t.Errorf("%d requests stored, want 0", n)
	}
}

// countingReader yields n bytes of JSON-ish filler and counts reads.
type countingReader struct {
	n, read int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.read >= c.n {
		return 0, io.EOF
	}
	k := min(int64(len(p)), c.n-c.read)
	for i := range k {
		p[i] = ' '
	}
	c.read += k
	return int(k), nil
}

func TestCreateGetCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.do(t, call{method: "POST", path: "/v1/deletion-requests", token: adminTok,
		contentType: "application/json; charset=UTF-8",
		body:        `{"identities":[{"type":"email","value":"  Jane@Example.COM "},{"type":"phone","value":"+49 151 1234 5678"},{"type":"x-crm","value":"c-1"}],"regulation":"ccpa","external_id":"ticket-1","callback_url":"https://hooks.example/cb"}`})
	if res.status != http.StatusAccepted {
		t.Fatalf("create: status %d: %s", res.status, res.body)
	}
	created := res.view(t)
	if got, want := res.header.Get("Location"), "/v1/deletion-requests/"+created.ID; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	received, err := time.Parse(time.RFC3339, created.ReceivedAt)
	if err != nil || received.Location() != time.UTC {
		t.Fatalf("received_at %q is not RFC 3339 UTC", created.ReceivedAt)
	}
	due, _ := time.Parse(time.RFC3339, created.DueAt)
	if got := due.Sub(received); got != 45*24*time.Hour {
		t.Errorf("due - received = %v, want 45 days (ccpa)", got)
	}
	want := view{ID: created.ID, Status: "received", Regulation: "ccpa", ExternalID: "ticket-1",
		ReceivedAt: created.ReceivedAt, DueAt: created.DueAt, Tasks: created.Tasks}
	if diff := cmp.Diff(want, created); diff != "" {
		t.Errorf("created view (-want +got):\n%s", diff)
	}
	if created.Tasks == nil || len(created.Tasks) != 0 {
		t.Errorf("tasks = %v, want []", created.Tasks)
	}
	if strings.Contains(string(res.body), "started_at") || strings.Contains(string(res.body), "completed_at") {
		t.Errorf("zero times are not omitted: %s", res.body)
	}

	// Stored as normalised and sealed; the view showed none of it.
	st := mustGetRequest(t, e.store, created.ID)
	ids, err := e.store.RequestIdentities(context.Background(), created.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantIDs := []lethe.Identity{{Type: "email", Value: "jane@example.com"}, {Type: "phone", Value: "+4915112345678"}, {Type: "x-crm", Value: "c-1"}}
	if diff := cmp.Diff(wantIDs, ids); diff != "" {
		t.Errorf("stored identities (-want +got):\n%s", diff)
	}
	if st.ClientID != "" || st.CallbackURL != "https://hooks.example/cb" {
		t.Errorf("stored client %q callback %q", st.ClientID, st.CallbackURL)
	}

	got := e.do(t, call{method: "GET", path: "/v1/deletion-requests/" + created.ID, token: adminTok})
	if got.status != http.StatusOK {
		t.Fatalf("get: status %d: %s", got.status, got.body)
	}
	if diff := cmp.Diff(created, got.view(t)); diff != "" {
		t.Errorf("get (-created +got):\n%s", diff)
	}

	canceled := e.do(t, call{method: "POST", path: "/v1/deletion-requests/" + created.ID + "/cancel", token: adminTok})
	if canceled.status != http.StatusOK {
		t.Fatalf("cancel: status %d: %s", canceled.status, canceled.body)
	}
	cv := canceled.view(t)
	if cv.Status != "canceled" || cv.CompletedAt == "" {
		t.Errorf("canceled view: status %q completed_at %q", cv.Status, cv.CompletedAt)
	}
	again := e.do(t, call{method: "POST", path: "/v1/deletion-requests/" + created.ID + "/cancel", token: adminTok})
	if again.status != http.StatusConflict || again.errorCode(t) != lethe.ECONFLICT {
		t.Errorf("second cancel: status %d body %s, want 409 conflict", again.status, again.body)
	}
}

func TestCancelAfterErasureStarted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.create(t, adminTok, "run@example.com", nil).view(t).ID
	ok, err := e.store.UpdateRequestState(context.Background(), store.UpdateRequestStateParams{ID: id, From: []lethe.Status{lethe.StatusReceived}, To: lethe.StatusRunning, ToStage: lethe.StageErase, At: time.Now()})
	if err != nil || !ok {
		t.Fatalf("start: %v %v", ok, err)
	}
	res := e.do(t, call{method: "POST", path: "/v1/deletion-requests/" + id + "/cancel", token: adminTok})
	if res.status != http.StatusConflict || res.errorCode(t) != lethe.ECONFLICT {
		t.Fatalf("status %d body %s, want 409 conflict", res.status, res.body)
	}
	if got := mustGetRequest(t, e.store, id).Status; got != lethe.StatusRunning {
		t.Errorf("status after refused cancel = %s", got)
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.create(t, adminTok, "nf@example.com", nil).view(t).ID
	missing := uuid.Must(uuid.NewV7()).String()
	for _, p := range []string{
		missing,
		"not-a-uuid",
		strings.ToUpper(id),       // not the canonical form
		"urn:uuid:" + id,          // uuid.Parse accepts it; the API does not
		"{" + id + "}",            // likewise
		"%27%20OR%201=1",          // nothing reaches the store but ids
		strings.Repeat("a", 2000), // long
	} {
		for _, c := range []call{
			{method: "GET", path: "/v1/deletion-requests/" + p, token: adminTok},
			{method: "POST", path: "/v1/deletion-requests/" + p + "/cancel", token: adminTok},
		} {
			res := e.do(t, c)
			if res.status != http.StatusNotFound || res.errorCode(t) != lethe.ENOTFOUND {
				t.Errorf("%s %s: status %d body %s, want 404 not_found", c.method, c.path, res.status, res.body)
			}
		}
	}
}

func TestDuplicateAnswersExisting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first := e.create(t, clientATok, "dup@example.com", nil)
	if first.status != http.StatusAccepted {
		t.Fatalf("first: %d %s", first.status, first.body)
	}
	// The same subject, written differently, is the same open request.
	second := e.create(t, clientATok, " DUP@Example.com", nil)
	if second.status != http.StatusOK {
		t.Fatalf("duplicate: status %d, want 200: %s", second.status, second.body)
	}
	if a, b := first.view(t).ID, second.view(t).ID; a != b {
		t.Errorf("duplicate answered %s, want %s", b, a)
	}
	// Another client's duplicate check does not see client-a's request.
	other := e.create(t, clientBTok, "dup@example.com", nil)
	if other.status != http.StatusAccepted {
		t.Errorf("other client: status %d, want 202", other.status)
	}
	if n := e.countRequests(t); n != 2 {
		t.Errorf("%d requests stored, want 2", n)
	}
}

func TestIdempotency(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := map[string]string{"Idempotency-Key": "order-42"}
	first := e.create(t, clientATok, "idem@example.com", key)
	if first.status != http.StatusAccepted {
		t.Fatalf("first: %d %s", first.status, first.body)
	}
	id := first.view(t).ID

	// The request progresses; a replay shows it as it is now, with the
	// first answer's status code.
	if ok, err := e.store.UpdateRequestState(context.Background(), store.UpdateRequestStateParams{ID: id, From: []lethe.Status{lethe.StatusReceived}, To: lethe.StatusRunning, ToStage: lethe.StageErase, At: time.Now()}); err != nil || !ok {
		t.Fatalf("start: %v %v", ok, err)
	}
	replay := e.create(t, clientATok, "idem@example.com", key)
	if replay.status != http.StatusAccepted {
		t.Fatalf("replay: status %d, want 202: %s", replay.status, replay.body)
	}
	rv := replay.view(t)
	if rv.ID != id || rv.Status != "running" {
		t.Errorf("replay: id %s status %s, want %s running", rv.ID, rv.Status, id)
	}
	if replay.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay lacks Idempotent-Replayed")
	}

	conflict := e.create(t, clientATok, "other@example.com", key)
	if conflict.status != http.StatusConflict || conflict.errorCode(t) != lethe.ECONFLICT {
		t.Errorf("reused key: status %d body %s, want 409 conflict", conflict.status, conflict.body)
	}
	changedCallback := e.do(t, call{method: "POST", path: "/v1/deletion-requests", token: clientATok, header: key,
		body: `{"identities":[{"type":"email","value":"idem@example.com"}],"callback_url":"https://new.example/cb"}`})
	if changedCallback.status != http.StatusConflict {
		t.Errorf("reused key with another callback_url: status %d body %s, want 409", changedCallback.status, changedCallback.body)
	}
	// Keys are per caller: client-b's same key is its own.
	b := e.create(t, clientBTok, "idem@example.com", key)
	if b.status != http.StatusAccepted || b.view(t).ID == id {
		t.Errorf("client-b with the same key: status %d body %s", b.status, b.body)
	}
	// A key first used on a duplicate answers the duplicate again (200):
	// only created requests keep a key, and the duplicate is still open.
	dupKey := map[string]string{"Idempotency-Key": "dup-key"}
	for range 2 {
		if res := e.create(t, clientATok, "idem@example.com", dupKey); res.status != http.StatusOK || res.view(t).ID != id {
			t.Errorf("duplicate with a key: status %d body %s", res.status, res.body)
		}
	}
	if n := e.countRequests(t); n != 2 {
		t.Errorf("%d requests stored, want 2", n)
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var ids []string // oldest first
	for i := range 7 {
		ids = append(ids, e.create(t, adminTok, fmt.Sprintf("list%d@example.com", i), nil).view(t).ID)
	}
	var got []string
	cursor := ""
	pages := 0
	for {
		path := "/v1/deletion-requests?limit=3"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		res := e.do(t, call{method: "GET", path: path, token: adminTok})
		if res.status != http.StatusOK {
			t.Fatalf("page %d: status %d: %s", pages, res.status, res.body)
		}
		var page struct {
			Data       []map[string]any `json:"data"`
			NextCursor *string          `json:"next_cursor"`
		}
		res.decode(t, &page)
		pages++
		for _, d := range page.Data {
			got = append(got, d["id"].(string))
			if _, ok := d["tasks"]; ok {
				t.Errorf("list item has tasks: %v", d)
			}
		}
		if page.NextCursor == nil {
			if strings.Contains(string(res.body), "next_cursor") {
				t.Errorf("last page mentions next_cursor: %s", res.body)
			}
			break
		}
		if len(page.Data) != 3 {
			t.Errorf("page %d has %d items, want 3", pages, len(page.Data))
		}
		cursor = *page.NextCursor
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if pages != 3 {
		t.Errorf("%d pages, want 3", pages)
	}
	want := make([]string, len(ids))
	for i, id := range ids {
		want[len(ids)-1-i] = id
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ids newest first (-want +got):\n%s", diff)
	}

	// Default page size holds all 7; a status filter narrows.
	e.do(t, call{method: "POST", path: "/v1/deletion-requests/" + ids[2] + "/cancel", token: adminTok})
	res := e.do(t, call{method: "GET", path: "/v1/deletion-requests?status=canceled&unknown=ignored", token: adminTok})
	var page struct {
		Data []view `json:"data"`
	}
	res.decode(t, &page)
	if len(page.Data) != 1 || page.Data[0].ID != ids[2] || page.Data[0].Status != "canceled" {
		t.Errorf("status=canceled: %s", res.body)
	}
}

func TestListBadQuery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for range 3 {
		e.create(t, adminTok, uuid.NewString()+"@example.com", nil)
	}
	res := e.do(t, call{method: "GET", path: "/v1/deletion-requests?limit=1", token: adminTok})
	var page struct {
		NextCursor string `json:"next_cursor"`
	}
	res.decode(t, &page)
	if page.NextCursor == "" {
		t.Fatalf("no cursor: %s", res.body)
	}
	c := page.NextCursor
	for _, q := range []string{
		"status=done",
		"status=RECEIVED",
		"limit=0",
		"limit=1001",
		"limit=-1",
		"limit=ten",
		"limit=1&limit=2",
		"status=received&status=running",
		"cursor=" + c + "x",      // tampered: not base64 any more
		"cursor=" + c[:len(c)-3], // truncated
		"cursor=" + strings.Repeat("A", 600),
		"cursor=%ZZ", // malformed escape
		"cursor=" + "!" + c[1:],
		"cursor=" + c + "&status=canceled", // made for another filter
		"cursor=" + flipMiddle(c),
	} {
		res := e.do(t, call{method: "GET", path: "/v1/deletion-requests?" + q, token: adminTok})
		if res.status != http.StatusBadRequest || res.errorCode(t) != lethe.EINVALID {
			t.Errorf("?%s: status %d body %s, want 400 invalid_request", q, res.status, res.body)
		}
	}
}

// TestClientIsolation: a client sees and acts on its own requests only,
// and another's look exactly like ones that do not exist.
func TestClientIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aID := e.create(t, clientATok, "iso-a@example.com", nil).view(t).ID
	bID := e.create(t, clientBTok, "iso-b@example.com", nil).view(t).ID
	adminID := e.create(t, adminTok, "iso-admin@example.com", nil).view(t).ID

	if r := mustGetRequest(t, e.store, aID); r.ClientID != "client-a" {
		t.Errorf("stored client = %q, want client-a", r.ClientID)
	}
	missing := e.do(t, call{method: "GET", path: "/v1/deletion-requests/" + uuid.Must(uuid.NewV7()).String(), token: clientBTok})
	foreign := e.do(t, call{method: "GET", path: "/v1/deletion-requests/" + aID, token: clientBTok})
	if foreign.status != http.StatusNotFound {
		t.Fatalf("client-b reading client-a's: status %d", foreign.status)
	}
	if diff := cmp.Diff(string(missing.body), string(foreign.body)); diff != "" {
		t.Errorf("foreign and missing answer differently:\n%s", diff)
	}
	if res := e.do(t, call{method: "POST", path: "/v1/deletion-requests/" + aID + "/cancel", token: clientBTok}); res.status != http.StatusNotFound {
		t.Errorf("client-b canceling client-a's: status %d", res.status)
	}
	if r := mustGetRequest(t, e.store, aID); r.Status != lethe.StatusReceived {
		t.Errorf("client-a's request is %s after client-b's cancel", r.Status)
	}

	listIDs := func(tok string) []string {
		var page struct {
			Data []view `json:"data"`
		}
		e.do(t, call{method: "GET", path: "/v1/deletion-requests", token: tok}).decode(t, &page)
		var out []string
		for _, v := range page.Data {
			out = append(out, v.ID)
		}
		return out
	}
	if diff := cmp.Diff([]string{aID}, listIDs(clientATok)); diff != "" {
		t.Errorf("client-a list (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{bID}, listIDs(clientBTok)); diff != "" {
		t.Errorf("client-b list (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{adminID, bID, aID}, listIDs(adminTok)); diff != "" {
		t.Errorf("admin list (-want +got):\n%s", diff)
	}
	if res := e.do(t, call{method: "GET", path: "/v1/deletion-requests/" + aID, token: adminTok}); res.status != http.StatusOK {
		t.Errorf("admin reading client-a's: status %d", res.status)
	}
	if res := e.do(t, call{method: "POST", path: "/v1/deletion-requests/" + aID + "/cancel", token: clientATok}); res.status != http.StatusOK {
		t.Errorf("client-a canceling its own: status %d", res.status)
	}
}

func TestGetShowsTasks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	id := e.create(t, adminTok, "tasks@example.com", nil).view(t).ID
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := e.store.CreateTasks(ctx, id, []string{"crm", "app_db"}, t0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.store.StartTaskAttempt(ctx, id, "app_db", t0); err != nil {
		t.Fatal(err)
	}
	until := time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)
	report := lethe.Report{Items: []lethe.ReportItem{
		{Object: "users", Action: lethe.ActionDelete, Rows: 1},
		{Object: "invoices", Action: lethe.ActionRetain, Rows: 3, Reason: "tax law", Until: until},
	}}
	if ok, err := e.store.FinishTask(ctx, store.FinishTaskParams{RequestID: id, Target: "app_db", State: lethe.TaskDone, Report: report, At: t0.Add(time.Minute)}); err != nil || !ok {
		t.Fatalf("finish: %v %v", ok, err)
	}
	if _, _, err := e.store.StartTaskAttempt(ctx, id, "crm", t0); err != nil {
		t.Fatal(err)
	}
	if err := e.store.RecordTaskError(ctx, id, "crm", "crm: 503 from api", t0); err != nil {
		t.Fatal(err)
	}
	res := e.do(t, call{method: "GET", path: "/v1/deletion-requests/" + id, token: adminTok})
	var got struct {
		Tasks []map[string]any `json:"tasks"`
	}
	res.decode(t, &got)
	want := []map[string]any{
		{"target": "app_db", "state": "done", "attempts": 1.0, "started_at": "2030-01-02T03:04:05Z", "finished_at": "2030-01-02T03:05:05Z",
			"report": map[string]any{"items": []any{
				map[string]any{"object": "users", "action": "delete", "rows": 1.0},
				map[string]any{"object": "invoices", "action": "retain", "rows": 3.0, "reason": "tax law", "until": "2040-01-01T00:00:00Z"},
			}}},
		{"target": "crm", "state": "running", "attempts": 1.0, "started_at": "2030-01-02T03:04:05Z", "last_error": "crm: 503 from api",
			"report": map[string]any{"items": []any{}}},
	}
	if diff := cmp.Diff(want, got.Tasks); diff != "" {
		t.Errorf("tasks (-want +got):\n%s", diff)
	}
}

// TestGetShowsOutcomeAndReach: a request stopped as ambiguous shows its
// outcome and the accounts it reached, in the detail and the list.
func TestGetShowsOutcomeAndReach(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	id := e.create(t, adminTok, "outcome@example.com", nil).view(t).ID
	reach := &lethe.Reach{Accounts: map[string]int{"shop/users": 2}, Unfollowed: []string{"shop/users.phone"}}
	ok, err := e.store.UpdateRequestState(ctx, store.UpdateRequestStateParams{
		ID: id, To: lethe.StatusFailed, ToStage: lethe.StageDone, At: time.Now(),
		Outcome: lethe.OutcomeAmbiguousSubject, Reach: reach,
	})
	if err != nil || !ok {
		t.Fatalf("update: %v %v", ok, err)
	}
	var got struct {
		Status  string         `json:"status"`
		Outcome string         `json:"outcome"`
		Reach   map[string]any `json:"reach"`
	}
	e.do(t, call{method: "GET", path: "/v1/deletion-requests/" + id, token: adminTok}).decode(t, &got)
	want := map[string]any{"accounts": map[string]any{"shop/users": 2.0}, "unfollowed": []any{"shop/users.phone"}}
	if got.Status != "failed" || got.Outcome != "ambiguous_subject" || !cmp.Equal(want, got.Reach) {
		t.Errorf("GET = %+v, want failed, ambiguous_subject and reach %v", got, want)
	}
	var list struct {
		Data []struct{ ID, Outcome string } `json:"data"`
	}
	e.do(t, call{method: "GET", path: "/v1/deletion-requests", token: adminTok}).decode(t, &list)
	if len(list.Data) != 1 || list.Data[0].Outcome != "ambiguous_subject" {
		t.Errorf("list = %+v, want the request with its outcome", list.Data)
	}
}

func TestUnauthorized(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.create(t, adminTok, "auth@example.com", nil).view(t).ID
	for _, tc := range []struct{ name, auth string }{
		{"none", ""},
		{"wrong token", "Bearer nope"},
		{"admin token prefix", "Bearer " + adminTok[:len(adminTok)-1]},
		{"admin token longer", "Bearer " + adminTok + "x"},
		{"basic", "Basic " + adminTok},
		{"empty bearer", "Bearer "},
		{"no scheme", adminTok},
	} {
		for _, c := range []call{
			{method: "POST", path: "/v1/deletion-requests", body: `{"identities":[{"type":"email","value":"u@example.com"}]}`},
			{method: "GET", path: "/v1/deletion-requests"},
			{method: "GET", path: "/v1/deletion-requests/" + id},
			{method: "POST", path: "/v1/deletion-requests/" + id + "/cancel"},
		} {
			c.header = map[string]string{"Authorization": tc.auth}
			res := e.do(t, c)
			if res.status != http.StatusUnauthorized || res.errorCode(t) != lethe.EUNAUTH {
				t.Errorf("%s: %s %s: status %d body %s", tc.name, c.method, c.path, res.status, res.body)
			}
			if !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s: WWW-Authenticate = %q", tc.name, res.header.Get("WWW-Authenticate"))
			}
		}
	}
	if got := mustGetRequest(t, e.store, id).Status; got != lethe.StatusReceived {
		t.Errorf("status %s after unauthorized cancel", got)
	}
	if n := e.countRequests(t); n != 1 {
		t.Errorf("%d requests stored, want 1", n)
	}
	// The scheme is case-insensitive.
	if res := e.do(t, call{method: "GET", path: "/v1/deletion-requests", header: map[string]string{"Authorization": "bearer " + adminTok}}); res.status != http.StatusOK {
		t.Errorf("lower-case scheme: status %d", res.status)
	}
}

// TestAuthDisabled: no authenticator, or an empty admin token, locks the
// API rather than opening it.
func TestAuthDisabled(t *testing.T) {
	t.Parallel()
	for name, auth := range map[string][]auth.Authenticator{
		"no authenticators": nil,
		"empty admin token": {auth.AdminToken("")},
		"blank admin token": {auth.AdminToken("  ")},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(o *Options) { o.Auth = auth })
			for _, h := range []string{"", "Bearer ", "Bearer  ", "Bearer x"} {
				res := e.do(t, call{method: "POST", path: "/v1/deletion-requests", body: validBody, header: map[string]string{"Authorization": h}})
				if res.status != http.StatusUnauthorized {
					t.Errorf("Authorization %q: status %d", h, res.status)
				}
			}
			if n := e.countRequests(t); n != 0 {
				t.Errorf("%d requests stored", n)
			}
		})
	}
}

// TestAuthChainErrors: an authenticator's error other than unauthorized
// ends the chain and is answered in the error shape.
func TestAuthChainErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err    error
		status int
		code   string
		header string
		value  string
	}{
		{lethe.Errorf(lethe.EUNAVAILABLE, "token store unavailable"), 503, lethe.EUNAVAILABLE, "", ""},
		{httpresponse.RateLimited(1500*time.Millisecond, "too many requests"), 429, lethe.ERATELIMIT, "Retry-After", "2"},
		{lethe.Errorf(lethe.EFORBIDDEN, "client disabled"), 403, lethe.EFORBIDDEN, "", ""},
		{fmt.Errorf("db: connection refused to 10.0.0.1"), 500, lethe.EINTERNAL, "", ""},
	} {
		failing := auth.AuthenticatorFunc(func(context.Context, *http.Request) (auth.Principal, error) { return auth.Principal{}, tc.err })
		e := newEnv(t, func(o *Options) { o.Auth = []auth.Authenticator{failing, auth.AdminToken(adminTok)} })
		res := e.do(t, call{method: "GET", path: "/v1/deletion-requests", token: adminTok})
		if res.status != tc.status || res.errorCode(t) != tc.code {
			t.Errorf("%v: status %d body %s", tc.err, res.status, res.body)
		}
		if tc.header != "" && res.header.Get(tc.header) != tc.value {
			t.Errorf("%v: %s = %q, want %q", tc.err, tc.header, res.header.Get(tc.header), tc.value)
		}
		if tc.status == 500 {
			if strings.Contains(string(res.body), "10.0.0.1") {
				t.Errorf("internal error shown: %s", res.body)
			}
			if !strings.Contains(e.logs.String(), "10.0.0.1") || !strings.Contains(e.logs.String(), res.header.Get("X-Request-Id")) {
				t.Errorf("internal error not logged with the request id: %s", e.logs.String())
			}
		}
	}
	// An authenticator that returns nobody is a bug, not a pass.
	empty := auth.AuthenticatorFunc(func(context.Context, *http.Request) (auth.Principal, error) { return auth.Principal{}, nil })
	e := newEnv(t, func(o *Options) { o.Auth = []auth.Authenticator{empty} })
	if res := e.do(t, call{method: "GET", path: "/v1/deletion-requests"}); res.status != http.StatusInternalServerError {
		t.Errorf("empty principal: status %d", res.status)
	}
}

// TestNoIdentityInResponsesOrLogs submits a unique subject through every
// route and outcome, then searches every response body and log line.
func TestNoIdentityInResponsesOrLogs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	secret := "zq" + strings.ReplaceAll(uuid.NewString(), "-", "")
	email := "Subject." + secret + "@Example.org"
	phone := "+4915199" + fmt.Sprintf("%06d", time.Now().UnixNano()%1000000) // 0151 and eight digits: valid every time
	body := `{"identities":[{"type":"email","value":"` + email + `"},{"type":"phone","value":"` + phone + `"},{"type":"user_id","value":"` + secret + `-uid"}],"external_id":"ext"}`
	post := func(tok string, h map[string]string, b string) answer {
		return e.do(t, call{method: "POST", path: "/v1/deletion-requests?email=" + secret, token: tok, header: h, body: b})
	}
	id := post(clientATok, map[string]string{"Idempotency-Key": "k1"}, body).view(t).ID
	post(clientATok, map[string]string{"Idempotency-Key": "k1"}, body)                                                                       // replay
	post(clientATok, nil, body)                                                                                                              // duplicate
	post(clientATok, map[string]string{"Idempotency-Key": "k1"}, strings.Replace(body, `"ext"`, `"other"`, 1))                               // conflict
	post(clientATok, nil, `{"identities":[{"type":"email","value":"`+secret+`"}]}`)                                                          // invalid email
	post(clientATok, nil, `{"identities":[{"type":"phone","value":"`+secret+`"}]}`)                                                          // invalid phone
	post(clientATok, nil, `{"identities":[{"type":"email","value":`+secret[2:12]+`}]}`)                                                      // wrong type (number-ish)
	post(clientATok, nil, `{"identities":[{"type":"email","value":"`+email+`","value":"`+email+`"}]}`)                                       // duplicate key
	post(clientATok, nil, `{"identities":[{"type":"x-`+secret+`","value":"`+secret+`"}]}`)                                                   // valid custom type, another request
	post(clientATok, nil, `{"identities":[{"type":"email","value":"`+email+`"}],"x":"`+secret+`"}`)                                          // unknown field
	post("wrong-"+secret, nil, body)                                                                                                         // unauthorized
	post(clientATok, map[string]string{"Idempotency-Key": secret}, strings.Replace(body, `"ext"`, `"`+strings.ToUpper(email)+`"`, 1))        // identity in external_id
	post(clientATok, nil, strings.Replace(body, `"ext"`, `"ext","callback_url":"https://hooks.example/cb?e=`+url.QueryEscape(email)+`"`, 1)) // identity in callback_url
	e.do(t, call{method: "GET", path: "/v1/deletion-requests/" + id, token: clientATok})                                                     // get
	e.do(t, call{method: "GET", path: "/v1/deletion-requests?cursor=" + secret + "&status=" + secret, token: adminTok})                      // bad query
	e.do(t, call{method: "GET", path: "/v1/deletion-requests", token: clientATok})                                                           // list
	e.do(t, call{method: "GET", path: "/v1/" + email, token: clientATok})                                                                    // unmatched
	e.do(t, call{method: "GET", path: "/v1/deletion-requests/" + email, token: clientATok})                                                  // bad id
	e.do(t, call{method: "POST", path: "/v1/deletion-requests/" + id + "/cancel", token: clientATok})                                        // cancel

	needles := []string{secret, strings.ToLower(email), email, strings.ToUpper(email), url.QueryEscape(email), phone, phone[1:]}
	e.mu.Lock()
	bodies := append([]string(nil), e.bodies...)
	e.mu.Unlock()
	if len(bodies) < 19 {
		t.Fatalf("only %d responses recorded", len(bodies))
	}
	for _, b := range bodies {
		for _, n := range needles {
			if strings.Contains(b, n) {
				t.Errorf("response discloses %q: %s", n, b)
			}
		}
	}
	logs := e.logs.String()
	if !strings.Contains(logs, `"route":"POST /v1/deletion-requests"`) {
		t.Fatalf("access log missing: %s", logs)
	}
	for _, n := range append(needles, clientATok, adminTok) {
		if strings.Contains(logs, n) {
			t.Errorf("log discloses %q", n)
		}
	}
}

// TestConcurrentSubmissions: the same idempotent submission raced from
// many goroutines creates one request and answers it to every caller.
func TestConcurrentSubmissions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 8
	ids := make(chan string, n)
	done := make(chan struct{})
	for range n {
		go func() {
			defer func() { done <- struct{}{} }()
			r := httptest.NewRequest("POST", "/v1/deletion-requests", strings.NewReader(`{"identities":[{"type":"email","value":"race@example.com"}]}`))
			r.Header.Set("Authorization", "Bearer "+clientATok)
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Idempotency-Key", "race")
			w := httptest.NewRecorder()
			e.srv.Handler().ServeHTTP(w, r)
			if w.Code != http.StatusAccepted {
				t.Errorf("status %d: %s", w.Code, w.Body)
				ids <- ""
				return
			}
			var v struct{ ID string }
			_ = json.Unmarshal(w.Body.Bytes(), &v)
			ids <- v.ID
		}()
	}
	for range n {
		<-done
	}
	close(ids)
	first := ""
	for id := range ids {
		if first == "" {
			first = id
		}
		if id != first {
			t.Errorf("answered %s and %s", first, id)
		}
	}
	if c := e.countRequests(t); c != 1 {
		t.Errorf("%d requests stored, want 1", c)
	}
}

// flipMiddle changes one character in the middle of a base64url string.
func flipMiddle(s string) string {
	i := len(s) / 2
	repl := byte('A')
	if s[i] == 'A' {
		repl = 'B'
	}
	return s[:i] + string(repl) + s[i+1:]
}
