package webhook_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector/webhook"
	"github.com/lethe-privacy/lethe/internal/httpapi"
	"github.com/lethe-privacy/lethe/internal/intake"
	"github.com/lethe-privacy/lethe/internal/pipeline"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testdb"
	"github.com/lethe-privacy/lethe/signature"
)

// These tests run a webhook target inside the real pipeline (SQLite, River)
// with lethe's HTTP server in front for call-backs, and inject the faults
// an internal service shows in practice.

type lethe_ struct {
	st   store.Store
	pipe *pipeline.Pipeline
	url  string // lethe's HTTP server, for call-backs
}

// startLethe opens a store, builds the pipeline over one webhook target
// (its options finished by opt once lethe's URL is known) and serves
// lethe's HTTP API.
func startLethe(t *testing.T, o webhook.Options, opt func(*webhook.Options, string)) *lethe_ {
	t.Helper()
	ctx := context.Background()
	kr := testdb.Keyring(t)
	st := testdb.OpenStore(t, "sqlite")
	if err := pipeline.Migrate(ctx, st); err != nil {
		t.Fatal(err)
	}
	var handler atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler.Load().(http.Handler).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	if opt != nil {
		opt(&o, srv.URL)
	}
	conn := open(t, o)
	pipe, err := pipeline.New(pipeline.Config{
		MaxAttempts:       3,
		BackoffBase:       10 * time.Millisecond,
		BackoffMax:        50 * time.Millisecond,
		FetchPollInterval: 20 * time.Millisecond,
		JobTimeout:        20 * time.Second,
		PendingMinWait:    10 * time.Millisecond,
	}, st, []pipeline.Target{{Name: "svc", Conn: conn}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	api := httpapi.New(httpapi.Options{Intake: intake.New(st, pipe, kr, intake.Config{}), Store: st, CompleteTask: pipe})
	handler.Store(api.Handler())
	if err := pipe.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := pipe.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return &lethe_{st: st, pipe: pipe, url: srv.URL}
}

func (l *lethe_) submit(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	r := &lethe.Request{
		ID: uuid.Must(uuid.NewV7()).String(), Regulation: lethe.GDPR,
		Status: lethe.StatusReceived, Stage: lethe.StageResolve,
		Identities: subject().Identities[:2], SubjectKey: uuid.NewString(),
		ReceivedAt: now, DueAt: now.Add(time.Hour), UpdatedAt: now,
	}
	err := l.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.CreateRequest(ctx, r); err != nil {
			return err
		}
		return l.pipe.EnqueueResolve(ctx, tx, r.ID)
	})
	if err != nil {
		t.Fatal(err)
	}
	return r.ID
}

// wait polls the request until cond holds (or the test times out).
func (l *lethe_) wait(t *testing.T, id string, within time.Duration, cond func(*lethe.Request) bool) *lethe.Request {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r, err := l.st.GetRequest(context.Background(), id, store.Scope{All: true})
		if err != nil {
			t.Fatal(err)
		}
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("request still %s/%s after %s; tasks %+v", r.Status, r.Stage, within, r.Tasks)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *lethe_) waitEnd(t *testing.T, id string, want lethe.Status) lethe.Task {
	t.Helper()
	r := l.wait(t, id, time.Minute, func(r *lethe.Request) bool { return r.Status.Terminal() })
	if r.Status != want || len(r.Tasks) != 1 {
		t.Fatalf("request ended %s with tasks %+v, want %s", r.Status, r.Tasks, want)
	}
	task := r.Tasks[0]
	if strings.Contains(task.LastError, subjectEmail) || strings.Contains(task.LastError, subjectUser) {
		t.Errorf("last error holds an identity value")
	}
	return task
}

func (l *lethe_) audit(t *testing.T, id string) map[string]int {
	t.Helper()
	events, err := l.st.ListAudit(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, e := range events {
		n[string(e.Type)]++
	}
	return n
}

func TestPipelineTimeoutFails(t *testing.T) {
	t.Parallel()
	s := newService(t, secret, seed()...)
	s.hang = 5 * time.Second
	o := options(s)
	o.Timeout = 100 * time.Millisecond
	l := startLethe(t, o, nil)
	task := l.waitEnd(t, l.submit(t), lethe.StatusFailed)
	if task.State != lethe.TaskFailed || task.Attempts != 3 || !strings.Contains(task.LastError, "did not answer within 100ms") {
		t.Errorf("task = %+v; want failed after 3 attempts with a timeout reason", task)
	}
}

func TestPipeline500TwiceThenDone(t *testing.T) {
	t.Parallel()
	s := newService(t, secret, seed()...)
	s.fail500 = 2
	l := startLethe(t, options(s), nil)
	task := l.waitEnd(t, l.submit(t), lethe.StatusCompleted)
	if task.Attempts != 3 || task.Report.Total() != 4 {
		t.Errorf("task = %+v; want done on the 3rd attempt with 4 records", task)
	}
}

func TestPipelineCheckURL(t *testing.T) {
	t.Parallel()
	s := newService(t, secret, seed()...)
	s.async, s.pendingPolls = true, 3
	l := startLethe(t, options(s), nil)
	id := l.submit(t)
	task := l.waitEnd(t, id, lethe.StatusCompleted)
	if task.Report.Total() != 4 || task.Attempts != 1 {
		t.Errorf("task = %+v; want done with 4 records and the pending answers not counted as attempts", task)
	}
	if n := l.audit(t, id)["task.pending"]; n != 1 {
		t.Errorf("task.pending audited %d times, want once", n)
	}
	s.mu.Lock()
	calls := s.eraseCalls
	s.mu.Unlock()
	if calls != 1 {
		t.Errorf("erase endpoint called %d times, want once (then the check URL)", calls)
	}
}

func TestPipelineCallback(t *testing.T) {
	t.Parallel()
	s := newService(t, secret, seed()...)
	s.async, s.callback = true, true
	o := options(s)
	// Polls so rare that only the call-back can end the task in time.
	o.PollInterval, o.PollMax, o.ConfirmWithin = time.Hour, time.Hour, time.Hour
	l := startLethe(t, o, func(o *webhook.Options, url string) { o.CallbackBaseURL = url })
	id := l.submit(t)
	var cb string
	l.wait(t, id, time.Minute, func(*lethe.Request) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		cb = s.callbackURLs[id]
		return cb != ""
	})
	if !strings.HasPrefix(cb, l.url+"/v1/tasks/") || !strings.HasSuffix(cb, "/complete") {
		t.Fatalf("callback_url = %q", cb)
	}
	// Wait until the task is parked pending.
	l.wait(t, id, time.Minute, func(r *lethe.Request) bool {
		return len(r.Tasks) == 1 && strings.HasPrefix(r.Tasks[0].LastError, "pending:")
	})

	post := func(body string, sign bool) int {
		req, _ := http.NewRequest(http.MethodPost, cb, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if sign {
			req.Header.Set(signature.Header, signature.Sign(time.Now(), []byte(body), []byte(secret)))
		} else {
			req.Header.Set(signature.Header, signature.Sign(time.Now(), []byte(body), []byte("another-secret-0123456789")))
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	// The service finishes its work, then says so.
	s.mu.Lock()
	s.counts(call{Identities: map[string][]string{"email": {subjectEmail}, "user_id": {subjectUser}}}, true)
	s.mu.Unlock()
	done := `{"status":"done","counts":{"orders":2,"sessions":2}}`
	if code := post(done, false); code != http.StatusUnauthorized {
		t.Errorf("callback signed with another secret: %d, want 401", code)
	}
	if code := post(`{"status":"queued"}`, true); code != http.StatusBadRequest {
		t.Errorf("callback saying queued: %d, want 400", code)
	}
	if code := post(done, true); code != http.StatusOK {
		t.Fatalf("callback: %d, want 200", code)
	}
	if code := post(done, true); code != http.StatusOK {
		t.Errorf("repeated callback: %d, want 200", code)
	}
	task := l.waitEnd(t, id, lethe.StatusCompleted)
	if task.Report.Total() != 4 {
		t.Errorf("task = %+v; want the call-back's 4 records", task)
	}
	if n := l.audit(t, id)["task.confirmed"]; n != 1 {
		t.Errorf("task.confirmed audited %d times, want once", n)
	}
	// Unknown token: 404 in the native shape.
	res, err := http.Post(l.url+"/v1/tasks/"+strings.Repeat("0", 64)+"/complete", "application/json", strings.NewReader(done))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("unknown token: %d, want 404", res.StatusCode)
	}
}

func TestPipelineNeverConfirmed(t *testing.T) {
	t.Parallel()
	s := newService(t, secret, seed()...)
	s.async, s.callback = true, true
	o := options(s)
	o.PollInterval, o.PollMax, o.ConfirmWithin = 50*time.Millisecond, 200*time.Millisecond, time.Second
	l := startLethe(t, o, func(o *webhook.Options, url string) { o.CallbackBaseURL = url })
	task := l.waitEnd(t, l.submit(t), lethe.StatusFailed)
	if !strings.HasPrefix(task.LastError, "target did not confirm erasure within 1s") || task.Report.Total() != 0 {
		t.Errorf("task = %+v; want failed at its deadline, nothing reported done", task)
	}
}
