package console

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/intake"
	"github.com/lethe-privacy/lethe/internal/operators"
	"github.com/lethe-privacy/lethe/internal/pipeline"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// env is a console on a real store, with a real (not started) pipeline:
// submissions insert their jobs, nothing runs them.
type env struct {
	t      testing.TB
	st     store.Store
	srv    *httptest.Server
	con    *Console
	in     *intake.Service
	tokens map[operators.Role]string
}

func newEnv(t testing.TB, st store.Store) *env {
	t.Helper()
	ctx := context.Background()
	if err := pipeline.Migrate(ctx, st); err != nil {
		t.Fatal(err)
	}
	pipe, err := pipeline.New(pipeline.Config{}, st, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	kr := testdb.Keyring(t)
	in := intake.New(st, pipe, kr, intake.Config{})
	ops := operators.NewService(st, kr, nil)
	e := &env{t: t, st: st, in: in, tokens: map[operators.Role]string{}}
	for _, role := range operators.Roles {
		c, err := ops.Create(ctx, string(role)+"-ana", role)
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[role] = c.Token
	}
	e.con, err = New(Options{Store: st, Operators: ops, Intake: in, Keys: kr, Actions: pipe,
		Targets: []Target{{Name: "shop", Kind: "sql"}}, Deadlines: pipe.CountDeadlines})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.con)
	t.Cleanup(e.srv.Close)
	return e
}

// browser is an HTTP client with cookies that does not follow redirects.
type browser struct {
	e *env
	c *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) get(path string) (int, string) {
	b.e.t.Helper()
	resp, err := b.c.Get(b.e.srv.URL + path)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (b *browser) post(path string, form url.Values) (int, string, string) {
	b.e.t.Helper()
	resp, err := b.c.PostForm(b.e.srv.URL+path, form)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(body)
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t testing.TB, page string) string {
	t.Helper()
	m := csrfRe.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the page:\n%s", page)
	}
	return m[1]
}

// signIn signs in as the operator of role and returns a page's CSRF token.
func (b *browser) signIn(role operators.Role) string {
	b.e.t.Helper()
	_, page := b.get("/console/sign-in")
	code, loc, body := b.post("/console/sign-in", url.Values{"csrf": {csrfOf(b.e.t, page)}, "name": {string(role) + "-ana"}, "token": {b.e.tokens[role]}})
	if code != http.StatusSeeOther || loc != "/console/" {
		b.e.t.Fatalf("sign-in answered %d to %q:\n%s", code, loc, body)
	}
	code, page = b.get("/console/")
	if code != http.StatusOK {
		b.e.t.Fatalf("overview after sign-in: %d", code)
	}
	return csrfOf(b.e.t, page)
}

func (e *env) submit(email string) string {
	e.t.Helper()
	r, _, err := e.in.Submit(context.Background(), intake.Submission{Actor: lethe.ActorAdmin,
		Identities: []lethe.Identity{{Type: lethe.IdentityEmail, Value: email}}, Regulation: lethe.GDPR})
	if err != nil {
		e.t.Fatal(err)
	}
	return r.ID
}

func TestSignInSessionsAndCSRF(t *testing.T) {
	testdb.ForEachDialect(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		b := e.browser()

		// Without a session, pages send the browser to sign in.
		code, _ := b.get("/console/requests")
		if code != http.StatusSeeOther {
			t.Fatalf("GET without a session: %d, want 303", code)
		}

		// A wrong token, and a right token under another name, fail alike.
		_, page := b.get("/console/sign-in")
		tok := csrfOf(t, page)
		for _, form := range []url.Values{
			{"csrf": {tok}, "name": {"viewer-ana"}, "token": {"lop_" + strings.Repeat("0", 64)}},
			{"csrf": {tok}, "name": {"admin-ana"}, "token": {e.tokens[operators.RoleViewer]}},
		} {
			code, _, body := b.post("/console/sign-in", form)
			if code != http.StatusUnauthorized || !strings.Contains(body, "Wrong name or token.") {
				t.Fatalf("bad sign-in answered %d:\n%s", code, body)
			}
		}
		// The sign-in form without its CSRF cookie's token is refused.
		code, _, _ = b.post("/console/sign-in", url.Values{"csrf": {"forged"}, "name": {"viewer-ana"}, "token": {e.tokens[operators.RoleViewer]}})
		if code != http.StatusForbidden {
			t.Fatalf("sign-in with a forged CSRF token: %d, want 403", code)
		}

		csrf := b.signIn(operators.RoleReviewer)
		id := e.submit("Ana.Lima@Example.com")

		// A form posted without its CSRF token changes nothing.
		code, _, body := b.post("/console/requests/"+id+"/cancel", url.Values{})
		if code != http.StatusForbidden || !strings.Contains(body, "CSRF") {
			t.Fatalf("POST without CSRF: %d\n%s", code, body)
		}
		code, _, _ = b.post("/console/requests/"+id+"/cancel", url.Values{"csrf": {"x" + csrf}})
		if code != http.StatusForbidden {
			t.Fatalf("POST with a wrong CSRF token: %d, want 403", code)
		}
		if r, err := st.GetRequest(context.Background(), id, store.Scope{All: true}); err != nil || r.Status != lethe.StatusReceived {
			t.Fatalf("after refused posts: %v, %v", r, err)
		}
		// With it, the action runs (through intake, audited under the
		// operator's name).
		code, loc, body := b.post("/console/requests/"+id+"/cancel", url.Values{"csrf": {csrf}})
		if code != http.StatusSeeOther || loc != "/console/requests/"+id+"?done=cancel" {
			t.Fatalf("cancel: %d %q\n%s", code, loc, body)
		}
		events, err := st.ListAudit(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		last := events[len(events)-1]
		for _, ev := range events {
			if ev.Type == lethe.EventRequestCanceled {
				last = ev
			}
		}
		if last.Type != lethe.EventRequestCanceled || last.ActorID != "reviewer-ana" {
			t.Fatalf("cancel audited as %+v", last)
		}

		// Sign-out ends the session on the server: the old cookie no
		// longer opens a page.
		jar := b.c.Jar
		cookies := jar.Cookies(mustURL(t, e.srv.URL+"/console/"))
		code, _, _ = b.post("/console/sign-out", url.Values{"csrf": {csrf}})
		if code != http.StatusSeeOther {
			t.Fatalf("sign-out: %d", code)
		}
		replay := e.browser()
		replay.c.Jar.SetCookies(mustURL(t, e.srv.URL+"/console/"), cookies)
		if code, _ := replay.get("/console/"); code != http.StatusSeeOther {
			t.Fatalf("a signed-out session opened a page: %d", code)
		}
	})
}

func mustURL(t testing.TB, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestSessionsExpireAndFollowTheOperator(t *testing.T) {
	st := testdb.OpenStore(t, "sqlite")
	e := newEnv(t, st)
	now := time.Now()
	e.con.opts.Now = func() time.Time { return now }
	b := e.browser()
	b.signIn(operators.RoleViewer)
	now = now.Add(DefaultSessionTTL + time.Second)
	if code, _ := b.get("/console/"); code != http.StatusSeeOther {
		t.Fatalf("an expired session opened a page: %d", code)
	}
	now = time.Now()
	b = e.browser()
	b.signIn(operators.RoleViewer)
	if err := st.SetOperatorDisabled(context.Background(), "viewer-ana", true); err != nil {
		t.Fatal(err)
	}
	if code, _ := b.get("/console/"); code != http.StatusSeeOther {
		t.Fatalf("a disabled operator's session opened a page: %d", code)
	}
}

func TestFailedSignInsAreThrottled(t *testing.T) {
	st := testdb.OpenStore(t, "sqlite")
	e := newEnv(t, st)
	b := e.browser()
	_, page := b.get("/console/sign-in")
	tok := csrfOf(t, page)
	wrong := url.Values{"csrf": {tok}, "name": {"admin-ana"}, "token": {"lop_" + strings.Repeat("1", 64)}}
	var codes []int
	for range 12 {
		code, _, _ := b.post("/console/sign-in", wrong)
		codes = append(codes, code)
	}
	if codes[0] != http.StatusUnauthorized || codes[len(codes)-1] != http.StatusTooManyRequests {
		t.Fatalf("failed sign-ins answered %v: want 401s then 429", codes)
	}
	// Blocked, even the right token is refused unheard.
	right := url.Values{"csrf": {tok}, "name": {"admin-ana"}, "token": {e.tokens[operators.RoleAdmin]}}
	if code, _, _ := b.post("/console/sign-in", right); code != http.StatusTooManyRequests {
		t.Fatalf("right token while blocked: %d, want 429", code)
	}
}

func TestRolesDecideWhatOperatorsReach(t *testing.T) {
	testdb.ForEachDialect(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		id := e.submit("bo@example.org")
		viewer := e.browser()
		csrf := viewer.signIn(operators.RoleViewer)
		for _, path := range []string{"/console/admin", "/console/import"} {
			if code, _ := viewer.get(path); code != http.StatusForbidden {
				t.Fatalf("viewer GET %s: %d, want 403", path, code)
			}
		}
		code, _, _ := viewer.post("/console/requests/"+id+"/hold", url.Values{"csrf": {csrf}, "note": {"litigation"}})
		if code != http.StatusForbidden {
			t.Fatalf("viewer placing a hold: %d, want 403", code)
		}
		if r, _ := st.GetRequest(context.Background(), id, store.Scope{All: true}); r.Status != lethe.StatusReceived {
			t.Fatalf("a viewer's refused action changed the request: %s", r.Status)
		}
		// The request page shows the identity masked, offers no action
		// and no reveal to a viewer.
		_, page := viewer.get("/console/requests/" + id)
		if strings.Contains(page, "bo@example.org") || !strings.Contains(page, "b•••@e•••.org") {
			t.Fatalf("viewer's request page does not mask the identity:\n%s", page)
		}
		if strings.Contains(page, `id="reveal"`) || strings.Contains(page, `id="form-hold"`) {
			t.Fatal("viewer is offered actions")
		}

		reviewer := e.browser()
		csrf = reviewer.signIn(operators.RoleReviewer)
		if code, _ := reviewer.get("/console/admin"); code != http.StatusForbidden {
			t.Fatalf("reviewer GET /console/admin: %d, want 403", code)
		}
		// Revealing is audited under the operator's name.
		code, _, page = reviewer.post("/console/requests/"+id+"/reveal", url.Values{"csrf": {csrf}})
		if code != http.StatusOK || !strings.Contains(page, "bo@example.org") {
			t.Fatalf("reveal: %d", code)
		}
		events, _ := st.ListAudit(context.Background(), id)
		if ev := events[len(events)-1]; ev.Type != lethe.EventIdentitiesRevealed || ev.ActorID != "reviewer-ana" {
			t.Fatalf("reveal audited as %+v", ev)
		}
		admin := e.browser()
		admin.signIn(operators.RoleAdmin)
		if code, page := admin.get("/console/admin"); code != http.StatusOK || !strings.Contains(page, "shop") {
			t.Fatalf("admin page: %d", code)
		}
	})
}

func TestImportReportsBadRowsAndStoresOnlyGoodOnes(t *testing.T) {
	testdb.ForEachDialect(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		b := e.browser()
		csrf := b.signIn(operators.RoleReviewer)
		csv := "email,phone,regulation,external_id\n" +
			"ana@example.com,,gdpr,a-1\n" + // line 2
			"not-an-email,,gdpr,\n" + // line 3: bad email
			"bo@example.com,,hipaa,\n" + // line 4: unknown regulation
			",,gdpr,\n" + // line 5: no identity
			",+44 20 7946 0958,ccpa,b-2\n" // line 6
		code, page := b.upload(csrf, csv)
		if code != http.StatusOK {
			t.Fatalf("upload: %d\n%s", code, page)
		}
		for _, want := range []string{`id="valid-rows">2<`, `id="bad-rows">3<`, "<td>3</td>", "<td>4</td>", "<td>5</td>"} {
			if !strings.Contains(page, want) {
				t.Fatalf("report lacks %q:\n%s", want, page)
			}
		}
		for _, leak := range []string{"not-an-email", "bo@example.com", "hipaa"} {
			if strings.Contains(page, leak) {
				t.Fatalf("report echoes %q", leak)
			}
		}
		if n, _ := st.CountRequestsByStatus(context.Background()); n[lethe.StatusReceived] != 0 {
			t.Fatalf("the report stored %d requests", n[lethe.StatusReceived])
		}
		// Confirm: the sealed rows come back, the worker submits them.
		rows := regexp.MustCompile(`name="rows" value="([^"]+)"`).FindStringSubmatch(page)
		if rows == nil {
			t.Fatal("no rows to confirm")
		}
		code, loc, _ := b.multipart("/console/import/submit", map[string]string{"csrf": csrf, "rows": rows[1]}, "", "")
		if code != http.StatusSeeOther || !strings.HasPrefix(loc, "/console/import/") {
			t.Fatalf("submit: %d %q", code, loc)
		}
		// The rows are sealed for the uploading session: another
		// operator's session cannot submit them.
		other := e.browser()
		oc := other.signIn(operators.RoleReviewer)
		if code, _, _ := other.multipart("/console/import/submit", map[string]string{"csrf": oc, "rows": rows[1]}, "", ""); code != http.StatusBadRequest {
			t.Fatalf("another session submitting the rows: %d, want 400", code)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for {
			if worked, err := e.con.runOneImport(ctx); err != nil {
				t.Fatal(err)
			} else if !worked {
				break
			}
		}
		_, prog := b.get(loc + "/progress")
		if !strings.Contains(prog, `"state":"done","total":2,"done":2,"created":2`) {
			t.Fatalf("progress: %s", prog)
		}
		if n, _ := st.CountRequestsByStatus(context.Background()); n[lethe.StatusReceived] != 2 {
			t.Fatalf("import stored %d requests, want 2", n[lethe.StatusReceived])
		}
		// Each is the importing operator's submission.
		entries, err := st.RegisterPage(context.Background(), store.RegisterFilter{Scope: store.Scope{All: true}, Limit: 10})
		if err != nil || len(entries) != 2 {
			t.Fatalf("register: %d entries, %v", len(entries), err)
		}
		for _, en := range entries {
			events, _ := st.ListAudit(context.Background(), en.RequestID)
			if events[0].Type != lethe.EventRequestReceived || events[0].ActorID != "reviewer-ana" {
				t.Fatalf("imported request received as %+v", events[0])
			}
		}
	})
}

func (b *browser) upload(csrf, csv string) (int, string) {
	code, _, body := b.multipart("/console/import", map[string]string{"csrf": csrf}, "file", csv)
	return code, body
}

// multipart posts a multipart form (with a file when file is set) and
// returns the status, Location and body.
func (b *browser) multipart(path string, fields map[string]string, file, content string) (int, string, string) {
	b.e.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		_ = mw.WriteField(k, v)
	}
	if file != "" {
		fw, _ := mw.CreateFormFile(file, "requests.csv")
		_, _ = fw.Write([]byte(content))
	}
	_ = mw.Close()
	req, _ := http.NewRequest(http.MethodPost, b.e.srv.URL+path, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(body)
}
