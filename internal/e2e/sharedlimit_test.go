package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestTwoProcessesShareOneRateLimit runs two real lethe processes on one
// PostgreSQL schema (one LETHE_SECRET_KEY) and checks that the s2s
// profile's contract limit (50 requests per 10 minutes, then a 10-minute
// block) holds for the pair, not per process: 50 signed requests
// alternating between them are accepted, the 51st is refused with
// Retry-After about 600 and the contract's body, and the other process
// refuses the next one too. A second client then fires 60 requests at
// both processes at once: exactly 50 get through.
func TestTwoProcessesShareOneRateLimit(t *testing.T) {
	t.Parallel()
	dsn, key := postgresDSN(t), randomKey(t)
	// Clients are made on the database before either process starts (the
	// command migrates it).
	seq := createClient(t, dsn, key, "partner-seq", "--api-key", "e2e-seq-api-key-0123456789", "--secret", "e2e-seq-secret-0123456789abcdefghij")
	par := createClient(t, dsn, key, "partner-par", "--api-key", "e2e-par-api-key-0123456789", "--secret", "e2e-par-secret-0123456789abcdefghij")
	yaml := fmt.Sprintf("db: %q\nadmin_token: ${LETHE_ADMIN_TOKEN}\n", dsn)
	nodes := []*server{newServer(t, yaml, key), newServer(t, yaml, key)}
	for _, n := range nodes {
		n.start()
	}

	post := func(n *server, c createdClient, userID string) reply {
		t.Helper()
		body := []byte(`{"user_id":"` + userID + `"}`)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r, err := call(ctx, http.MethodPost, n.url+"/user_deletion_requests", s2sHeaders(c.APIKey, c.Secret, body), body)
		if err != nil {
			t.Fatalf("s2s request for user %s: %v", userID, err)
		}
		return r
	}
	checkRefused := func(r reply, which string, maxRetry int) {
		t.Helper()
		if r.code != http.StatusTooManyRequests {
			t.Fatalf("%s: status %d, want 429: %s", which, r.code, r.body)
		}
		var e struct {
			Errors []string `json:"errors"`
		}
		if err := json.Unmarshal(r.body, &e); err != nil || len(e.Errors) == 0 {
			t.Errorf("%s: body %q, want {\"errors\":[...]} (%v)", which, r.body, err)
		}
		ra, err := strconv.Atoi(r.header.Get("Retry-After"))
		if err != nil || ra < maxRetry-15 || ra > maxRetry {
			t.Errorf("%s: Retry-After %q, want about %d seconds (at most)", which, r.header.Get("Retry-After"), maxRetry)
		}
	}

	// 50 alternating: all accepted, each a request of its own.
	ids := map[string]bool{}
	for i := range 50 {
		r := post(nodes[i%2], seq, fmt.Sprintf("seq-%d", i))
		var v struct {
			ID string `json:"id"`
		}
		if r.code != http.StatusOK || json.Unmarshal(r.body, &v) != nil || v.ID == "" {
			t.Fatalf("request %d of 50 (to process %d): status %d: %s", i+1, i%2, r.code, r.body)
		}
		ids[v.ID] = true
	}
	if len(ids) != 50 {
		t.Errorf("50 requests got %d distinct ids", len(ids))
	}
	// The 51st, to process 0: refused, and the client is blocked for 10
	// minutes from now.
	checkRefused(post(nodes[0], seq, "seq-50"), "51st request (process 0)", 600)
	// The next, to the other process: refused too; the block is not
	// extended, so Retry-After is no more than 600.
	checkRefused(post(nodes[1], seq, "seq-51"), "52nd request (process 1)", 600)

	// Concurrently: 60 requests of another client, 30 to each process at
	// once. The shared counter is taken under a row lock, so exactly 50
	// pass whatever the interleaving.
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		codes = map[int]int{}
	)
	for i := range 60 {
		wg.Go(func() {
			body := []byte(fmt.Sprintf(`{"user_id":"par-%d"}`, i))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r, err := call(ctx, http.MethodPost, nodes[i%2].url+"/user_deletion_requests", s2sHeaders(par.APIKey, par.Secret, body), body)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				codes[-1]++
				return
			}
			codes[r.code]++
		})
	}
	wg.Wait()
	if codes[http.StatusOK] != 50 || codes[http.StatusTooManyRequests] != 10 {
		t.Errorf("60 concurrent requests across both processes: statuses %v, want 50 × 200 and 10 × 429", codes)
	}
	// Blocked on both now.
	checkRefused(post(nodes[0], par, "par-x"), "after the burst (process 0)", 600)
	checkRefused(post(nodes[1], par, "par-y"), "after the burst (process 1)", 600)

	// The refused requests stored nothing: 100 requests in all.
	st := openDB(t, "pgx", dsn)
	if n := count(t, st, `SELECT count(*) FROM requests`); n != 100 {
		t.Errorf("%d requests stored, want 100 (the accepted ones)", n)
	}
}
