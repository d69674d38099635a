package processor_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/clients"
	"github.com/lethe-privacy/lethe/internal/httpapi"
	"github.com/lethe-privacy/lethe/internal/intake"
	"github.com/lethe-privacy/lethe/internal/pipeline"
	"github.com/lethe-privacy/lethe/internal/profile/connect"
	"github.com/lethe-privacy/lethe/internal/profile/profiletest"
	"github.com/lethe-privacy/lethe/internal/profile/s2s"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
	"github.com/lethe-privacy/lethe/internal/seal"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// receiver is a second lethe, the processor: its own SQLite store, client
// credentials made by clients.Create, intake, and lethe's server side of
// both profiles behind httpapi, on a real HTTP listener. With a pipeline
// (and no targets of its own) its requests run to completed, so the
// connect status endpoint has something to report; without one they stay
// received, like a processor that has not got round to them.
type receiver struct {
	t       testing.TB
	st      store.Store
	kr      *seal.Keyring
	intake  *intake.Service
	clients *clients.Service
	creds   clients.Created
	url     string

	skew atomic.Int64 // added to the receiver's clock (tokens, rate limits)

	mu   sync.Mutex
	hits map[string]int // path -> calls
	fail map[string]int // path -> 500s still to answer
	// failCall, when set, answers 500 to the n-th call (from 1) of path
	// when it returns true.
	failCall func(path string, n int) bool
}

type receiverConfig struct {
	pipeline bool
	s2sRule  ratelimit.Rule // zero: the contract's
	connRule ratelimit.Rule // zero: the profile's default
	tokenTTL time.Duration  // zero: 24h
}

// Credentials of the forwarding lethe at the receiver.
const (
	apiKey       = "fwd-api-key-0123456789"
	sharedSecret = "fwd-shared-secret-0123456789"
	clientID     = "fwd-client"
	clientSecret = "fwd-client-secret-0123456789"
)

func startReceiver(t testing.TB, cfg receiverConfig) *receiver {
	t.Helper()
	ctx := context.Background()
	kr := testdb.Keyring(t)
	st := testdb.OpenStore(t, "sqlite")
	r := &receiver{t: t, st: st, kr: kr, hits: map[string]int{}, fail: map[string]int{}}
	now := func() time.Time { return time.Now().Add(time.Duration(r.skew.Load())) }

	var queue intake.Enqueuer = profiletest.NopQueue{}
	if cfg.pipeline {
		if err := pipeline.Migrate(ctx, st); err != nil {
			t.Fatal(err)
		}
		pipe, err := pipeline.New(pipeline.Config{
			Workers:           4,
			MaxAttempts:       3,
			BackoffBase:       10 * time.Millisecond,
			BackoffMax:        50 * time.Millisecond,
			FetchPollInterval: 20 * time.Millisecond,
			JobTimeout:        20 * time.Second,
			PendingMinWait:    10 * time.Millisecond,
		}, st, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := pipe.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := pipe.Stop(ctx); err != nil {
				t.Errorf("stop receiver pipeline: %v", err)
			}
		})
		queue = pipe
	}
	r.intake = intake.New(st, queue, kr, intake.Config{})
	var err error
	r.clients, err = clients.New(st, kr, clients.Config{Now: now, TokenTTL: cfg.tokenTTL})
	if err != nil {
		t.Fatal(err)
	}
	r.creds, err = r.clients.Create(ctx, clients.CreateParams{Name: "forwarder", APIKey: apiKey, Secret: sharedSecret, ClientID: clientID, ClientSecret: clientSecret})
	if err != nil {
		t.Fatal(err)
	}
	limiter := ratelimit.NewStore(st, now)
	sp, err := s2s.New(s2s.Options{Intake: r.intake, Clients: r.clients, Limiter: limiter, Rules: ratelimit.Rules{Default: cfg.s2sRule}})
	if err != nil {
		t.Fatal(err)
	}
	cp, err := connect.New(connect.Options{Intake: r.intake, Clients: r.clients, Store: st, Keyring: kr, Limiter: limiter, Rules: ratelimit.Rules{Default: cfg.connRule}})
	if err != nil {
		t.Fatal(err)
	}
	api := httpapi.New(httpapi.Options{Intake: r.intake, Store: st, Profiles: []httpapi.Profile{sp, cp}})
	h := api.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.hits[req.URL.Path]++
		fail := r.fail[req.URL.Path] > 0
		if fail {
			r.fail[req.URL.Path]--
		}
		if r.failCall != nil && r.failCall(req.URL.Path, r.hits[req.URL.Path]) {
			fail = true
		}
		r.mu.Unlock()
		if fail {
			http.Error(w, `{"errors":["Internal error"]}`, http.StatusInternalServerError)
			return
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

// calls returns how many calls reached path.
func (r *receiver) calls(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits[path]
}

// failNext makes the next n calls to path answer 500.
func (r *receiver) failNext(path string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail[path] = n
}

// advance moves the receiver's clock: tokens expire, rate-limit windows
// and blocks end.
func (r *receiver) advance(d time.Duration) { r.skew.Add(int64(d)) }

// submit files a request at the receiver as the forwarder would, for
// other people's data.
func (r *receiver) submit(t testing.TB, id lethe.Identity) *lethe.Request {
	t.Helper()
	req, _, err := r.intake.Submit(context.Background(), intake.Submission{
		Actor: lethe.ActorClient, ClientID: r.creds.ID, Identities: []lethe.Identity{id}, Regulation: lethe.GDPR,
	})
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// latest returns the forwarder's newest request at the receiver for each
// identity, as the receiver classifies what it was sent (nil when none).
func (r *receiver) latest(t testing.TB, ids []lethe.Identity) []*lethe.Request {
	t.Helper()
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = intake.SubjectKey(r.kr, []lethe.Identity{id})
	}
	m, err := r.st.LatestRequestsBySubject(context.Background(), r.creds.ID, keys)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]*lethe.Request, len(ids))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}

// dump renders the receiver's requests for ids: id and status, or "none".
func (r *receiver) dump(t testing.TB, ids []lethe.Identity) string {
	t.Helper()
	var lines []string
	for i, req := range r.latest(t, ids) {
		line := string(ids[i].Type) + "#" + ids[i].Value + ": none"
		if req != nil {
			line = string(ids[i].Type) + "#" + ids[i].Value + ": " + req.ID + " " + string(req.Status)
		}
		lines = append(lines, line)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// count returns how many of ids have a request at the receiver that
// satisfies ok (nil request included).
func (r *receiver) count(t testing.TB, ids []lethe.Identity, ok func(*lethe.Request) bool) int64 {
	t.Helper()
	var n int64
	for _, req := range r.latest(t, ids) {
		if ok(req) {
			n++
		}
	}
	return n
}

// waitCompleted waits until every one of ids has a completed request.
func (r *receiver) waitCompleted(t testing.TB, ids []lethe.Identity) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for r.count(t, ids, func(q *lethe.Request) bool { return q == nil || q.Status != lethe.StatusCompleted }) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("receiver did not complete the requests:\n%s", r.dump(t, ids))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
