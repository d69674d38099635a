package webhook_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/signature"
)

// service is an internal service in miniature: it keeps records in memory,
// checks lethe's signature on every call, and erases either at once or
// asynchronously, as its mode says. Faults are injected through its fields.
type service struct {
	t      testing.TB
	secret []byte
	srv    *httptest.Server

	mu      sync.Mutex
	records []record
	// async: erase answers 202; the job is done after pendingPolls polls
	// of its check URL (or, with callback set, only when the test calls
	// back).
	async        bool
	pendingPolls int
	callback     bool
	fail500      int           // answer 500 to this many erase calls first
	hang         time.Duration // erase calls answer only after this long
	jobs         map[string]*job
	eraseCalls   int
	callbackURLs map[string]string // request id -> callback_url received
}

type record struct{ object, email, userID string }

type job struct {
	ids   map[string][]string // the GET of the check URL has no body
	polls int
	done  bool
}

var objects = []string{"orders", "sessions"}

func newService(t testing.TB, secret string, records ...record) *service {
	s := &service{t: t, secret: []byte(secret), records: records, jobs: map[string]*job{}, callbackURLs: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /erase", s.handleErase)
	mux.HandleFunc("GET /check/{id}", s.handleCheck)
	mux.HandleFunc("POST /plan", s.handlePlan)
	mux.HandleFunc("POST /verify", s.handleVerify)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

type call struct {
	RequestID   string              `json:"request_id"`
	Identities  map[string][]string `json:"identities"`
	CallbackURL string              `json:"callback_url"`
}

// read checks the signature and idempotency key and decodes the call.
func (s *service) read(w http.ResponseWriter, r *http.Request) (call, bool) {
	body, _ := io.ReadAll(r.Body)
	if err := signature.Verify(s.secret, r.Header.Get(signature.Header), body, time.Now()); err != nil {
		s.t.Errorf("%s %s: %v", r.Method, r.URL.Path, err)
		w.WriteHeader(http.StatusUnauthorized)
		return call{}, false
	}
	var c call
	if r.Method == http.MethodGet {
		c.RequestID = r.Header.Get("Idempotency-Key")
		return c, true
	}
	if err := json.Unmarshal(body, &c); err != nil || c.RequestID == "" || r.Header.Get("Idempotency-Key") != c.RequestID {
		s.t.Errorf("%s: bad call body or idempotency key", r.URL.Path)
		w.WriteHeader(http.StatusBadRequest)
		return call{}, false
	}
	return c, true
}

func (r record) matches(c call) bool {
	for _, e := range c.Identities["email"] {
		if r.email == e {
			return true
		}
	}
	for _, u := range c.Identities["user_id"] {
		if r.userID == u {
			return true
		}
	}
	return false
}

// counts counts (and with erase, deletes) the records c names. Call with
// s.mu held.
func (s *service) counts(c call, erase bool) map[string]int64 {
	n := map[string]int64{}
	for _, o := range objects {
		n[o] = 0
	}
	var keep []record
	for _, r := range s.records {
		if r.matches(c) {
			n[r.object]++
			if erase {
				continue
			}
		}
		keep = append(keep, r)
	}
	if erase {
		s.records = keep
	}
	return n
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (s *service) handleErase(w http.ResponseWriter, r *http.Request) {
	c, ok := s.read(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	s.eraseCalls++
	hang, fail := s.hang, s.fail500 > 0
	if fail {
		s.fail500--
	}
	if c.CallbackURL != "" {
		s.callbackURLs[c.RequestID] = c.CallbackURL
	}
	s.mu.Unlock()
	if hang > 0 {
		select {
		case <-r.Context().Done():
		case <-time.After(hang):
		}
		return
	}
	if fail {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.async {
		writeJSON(w, http.StatusOK, map[string]any{"status": "done", "counts": s.counts(c, true)})
		return
	}
	j := s.jobs[c.RequestID]
	if j == nil || j.done {
		j = &job{ids: c.Identities}
		s.jobs[c.RequestID] = j
	}
	a := map[string]any{"status": "pending"}
	if !s.callback {
		a["check_url"] = "/check/" + c.RequestID
	}
	writeJSON(w, http.StatusAccepted, a)
}

func (s *service) handleCheck(w http.ResponseWriter, r *http.Request) {
	c, ok := s.read(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if id != c.RequestID {
		s.t.Errorf("check URL of %s polled with the idempotency key of another request", id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j == nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if j.polls < s.pendingPolls {
		j.polls++
		writeJSON(w, http.StatusOK, map[string]any{"status": "queued"})
		return
	}
	// The erasure runs once per job; later polls report nothing new.
	counts := map[string]int64{"orders": 0, "sessions": 0}
	if !j.done {
		j.done = true
		counts = s.counts(call{Identities: j.ids}, true)
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "done", "counts": counts})
}

func (s *service) handlePlan(w http.ResponseWriter, r *http.Request) {
	c, ok := s.read(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"counts": s.counts(c, false)})
}

func (s *service) handleVerify(w http.ResponseWriter, r *http.Request) {
	c, ok := s.read(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"remaining": s.counts(c, false)})
}

// dump renders the records of those matching c (the subject) and of
// everyone else, deterministically.
func (s *service) dump(c call) (subject, others string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var a, b []string
	for _, r := range s.records {
		line := fmt.Sprintf("%s %s %s", r.object, r.email, r.userID)
		if r.matches(c) {
			a = append(a, line)
		} else {
			b = append(b, line)
		}
	}
	sort.Strings(a)
	sort.Strings(b)
	return strings.Join(a, "\n"), strings.Join(b, "\n")
}
