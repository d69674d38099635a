// Package vendorfake holds fakes of SaaS vendors' deletion APIs, each built
// from the vendor's public API documentation (paths, authentication,
// bodies, async statuses, rate-limit answers), for the recipe tests. A fake
// listens on 127.0.0.1 only and holds people: the records a deletion
// removes. Tests inject what real vendors do to a client: 429s with
// Retry-After, credentials that stop working, tokens that expire, jobs that
// stay pending, fail or only partly succeed.
package vendorfake

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
)

// Person is one of the vendor's records.
type Person struct {
	ID     string // the vendor's own id
	Email  string
	Phone  string
	UserID string // the company's user id (Segment's userId, Braze's external_id, ...)
	// State is "active", "soft" (Zendesk's soft-deleted user: still
	// holds the data) or "gone".
	State string
}

// Holds reports whether p still holds personal data.
func (p *Person) Holds() bool { return p.State != "gone" }

// Fake is one vendor's API on a loopback listener.
type Fake struct {
	URL string

	mu     sync.Mutex
	people []*Person
	hits   map[string]int // "METHOD /path" -> calls
	// Failure injection.
	throttle   int            // next calls answered 429
	retryAfter string         // their Retry-After
	revoked    bool           // credentials refused from now on
	fail       int            // next deletion calls refused with 4xx
	broken     map[string]int // route -> next calls answered 500
	batches    []int          // identifiers per deletion call
	// Jobs.
	jobs    map[string]*job
	order   []string
	nextJob int
	// PendingPolls is how many status answers a job stays pending for.
	pendingPolls int
	outcome      string // done, failed or partial
	// OAuth2.
	tokens    map[string]bool // valid tokens
	tokenHits int
	secrets   map[string]string // credential name -> value expected
}

type job struct {
	id     string
	people []*Person
	polls  int
	state  string // pending, done, failed, partial
}

// New starts an empty fake serving h's routes; every route goes through
// the failure injection.
func newFake(tb testing.TB, secrets map[string]string, routes func(f *Fake, mux *http.ServeMux)) *Fake {
	tb.Helper()
	f := &Fake{hits: map[string]int{}, broken: map[string]int{}, jobs: map[string]*job{}, tokens: map[string]bool{}, outcome: "done", pendingPolls: 1, secrets: secrets}
	mux := http.NewServeMux()
	routes(f, mux)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.hits[r.Method+" "+r.URL.Path]++
		if f.throttle > 0 {
			f.throttle--
			ra := f.retryAfter
			f.mu.Unlock()
			if ra != "" {
				w.Header().Set("Retry-After", ra)
			}
			writeJSON(w, http.StatusTooManyRequests, map[string]any{"message": "Too Many Requests", "error": "rate limited"})
			return
		}
		if f.broken[r.Method+" "+r.URL.Path] > 0 {
			f.broken[r.Method+" "+r.URL.Path]--
			f.mu.Unlock()
			writeJSON(w, http.StatusInternalServerError, map[string]any{"error": "internal error"})
			return
		}
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	// httptest listens on 127.0.0.1 only.
	srv.Start()
	tb.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// Add stores people.
func (f *Fake) Add(ps ...Person) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range ps {
		if p.State == "" {
			p.State = "active"
		}
		f.people = append(f.people, &p)
	}
}

// Dump renders the people whose ids are in ids (or all others when others
// is true), sorted: their fields and state.
func (f *Fake) Dump(ids []string, others bool) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var lines []string
	for _, p := range f.people {
		if want[p.ID] != others {
			lines = append(lines, fmt.Sprintf("%s|%s|%s|%s|%s", p.ID, p.Email, p.Phone, p.UserID, p.State))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// Remaining counts the people among ids that still hold data.
func (f *Fake) Remaining(ids []string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for _, p := range f.people {
		for _, id := range ids {
			if p.ID == id && p.Holds() {
				n++
			}
		}
	}
	return n
}

// Hits returns how many calls reached "METHOD /path".
func (f *Fake) Hits(route string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[route]
}

// TotalHits returns every call made.
func (f *Fake) TotalHits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, v := range f.hits {
		n += v
	}
	return n
}

// TokenHits returns the calls to the OAuth2 token endpoint.
func (f *Fake) TokenHits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokenHits
}

// Throttle answers the next n calls with 429 and Retry-After ra ("" for
// none).
func (f *Fake) Throttle(n int, ra string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.throttle, f.retryAfter = n, ra
}

// Revoke makes the vendor refuse the credentials from now on, as when a
// static API key is rotated or expires mid-run.
func (f *Fake) Revoke() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revoked = true
}

// Break answers the next n calls to route ("DELETE /api/v2/...") with 500.
func (f *Fake) Break(route string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.broken[route] = n
}

// Batches lists how many identifiers each deletion call carried.
func (f *Fake) Batches() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.batches...)
}

// ExpireTokens makes every OAuth2 access token issued so far invalid.
func (f *Fake) ExpireTokens() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens = map[string]bool{}
}

// FailDeletions makes the next n deletion calls answer the vendor's 4xx
// refusal, quoting what they were sent (as vendors do).
func (f *Fake) FailDeletions(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = n
}

// Jobs sets how many status answers a job stays pending for, and how it
// ends: "done", "failed" or "partial".
func (f *Fake) Jobs(pendingPolls int, outcome string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pendingPolls, f.outcome = pendingPolls, outcome
}

// JobIDs lists the jobs created, in order.
func (f *Fake) JobIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.order...)
}

// ---- helpers for the vendors (call with f.mu held unless noted) -----------

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads a JSON body strictly (unknown fields are the fake's way of
// checking the recipe sends what the vendor documents).
func decode(r *http.Request, v any) error {
	d := json.NewDecoder(r.Body)
	d.DisallowUnknownFields()
	return d.Decode(v)
}

func (f *Fake) bearerOK(r *http.Request, secret string) bool {
	return !f.revoked && r.Header.Get("Authorization") == "Bearer "+f.secrets[secret]
}

func (f *Fake) basicOK(r *http.Request, user, pass string) bool {
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	return !f.revoked && r.Header.Get("Authorization") == want
}

func (f *Fake) tokenOK(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && f.tokens[tok] && !f.revoked
}

func (f *Fake) issueToken() string {
	f.tokenHits++
	tok := fmt.Sprintf("tok-%d", f.tokenHits)
	f.tokens[tok] = true
	return tok
}

// failing consumes one injected deletion refusal.
func (f *Fake) failing() bool {
	if f.fail > 0 {
		f.fail--
		return true
	}
	return false
}

func (f *Fake) newJob(prefix string, ps []*Person) *job {
	f.nextJob++
	j := &job{id: fmt.Sprintf("%s-%d", prefix, f.nextJob), people: ps, state: "pending"}
	f.jobs[j.id] = j
	f.order = append(f.order, j.id)
	return j
}

// poll advances a job by one status answer and applies its outcome once.
func (f *Fake) poll(j *job) string {
	if j.state != "pending" {
		return j.state
	}
	j.polls++
	if j.polls <= f.pendingPolls {
		return "pending"
	}
	j.state = f.outcome
	switch f.outcome {
	case "done":
		for _, p := range j.people {
			p.State = "gone"
		}
	case "partial":
		for i, p := range j.people {
			if i%2 == 0 {
				p.State = "gone"
			}
		}
	}
	return j.state
}

func (f *Fake) find(match func(p *Person) bool) []*Person {
	var out []*Person
	for _, p := range f.people {
		if p.State == "active" && match(p) {
			out = append(out, p)
		}
	}
	return out
}

func (f *Fake) byID(id string) *Person {
	for _, p := range f.people {
		if p.ID == id {
			return p
		}
	}
	return nil
}

func in(v string, list []string) bool {
	for _, x := range list {
		if x != "" && x == v {
			return true
		}
	}
	return false
}
