package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestCrashDuringBatchedIntake keeps 48 clients submitting at once, so
// that intake stores them in shared transactions (group commit), kills
// the server with SIGKILL in the middle of that, restarts it, and checks
// that every request that was answered 2xx is stored exactly once, with
// exactly one request.received event: an answer is only given after its
// batch committed, and a batch cut by the kill is lost whole, unanswered.
func TestCrashDuringBatchedIntake(t *testing.T) {
	t.Parallel()
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			crashDuringBatchedIntake(t, newBackend(t, name))
		})
	}
}

func crashDuringBatchedIntake(t *testing.T, b *backend) {
	shop := b.newTarget(t, "shop")
	run(t, shop.db, `CREATE TABLE users (id BIGINT PRIMARY KEY, email TEXT NOT NULL)`)
	srv := newServer(t, b.config([]target{shop}, map[string]string{
		"shop": "      - {name: users, identities: {email: email}, action: delete}\n",
	}), b.secretKey)
	srv.start()

	const clients, answeredBeforeKill = 48, 150
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu       sync.Mutex
		answered = map[string]string{} // request id -> email
		sent     int
		wg       sync.WaitGroup
	)
	for c := range clients {
		wg.Go(func() {
			for k := 0; ctx.Err() == nil; k++ {
				email := fmt.Sprintf("c%d-%d@example.com", c, k)
				body := map[string]any{"identities": []map[string]string{{"type": "email", "value": email}}}
				mu.Lock()
				sent++
				mu.Unlock()
				var v requestView
				code, err := srv.do(ctx, http.MethodPost, "/v1/deletion-requests", nil, body, &v)
				if err != nil {
					return // the server is gone (or the test is done)
				}
				if code >= 300 || v.ID == "" {
					t.Errorf("submit %s: status %d", email, code)
					return
				}
				mu.Lock()
				answered[v.ID] = email
				mu.Unlock()
			}
		})
	}
	waitFor(t, 60*time.Second, "submissions to be answered", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(answered) >= answeredBeforeKill, fmt.Sprintf("%d answered", len(answered))
	})
	srv.kill()
	cancel()
	wg.Wait()
	mu.Lock()
	acked, attempted := len(answered), sent
	mu.Unlock()
	t.Logf("killed after %d answers of %d submissions", acked, attempted)

	srv.start()
	st := b.conn(t)
	stored := count(t, st, `SELECT count(*) FROM requests`)
	if stored < int64(acked) || stored > int64(attempted) {
		t.Errorf("%d requests stored, want between the %d answered and the %d sent", stored, acked, attempted)
	}
	rows, err := st.QueryContext(context.Background(), `SELECT r.id, count(a.seq) FROM requests r
		LEFT JOIN audit_events a ON a.request_id = r.id AND a.type = 'request.received' GROUP BY r.id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	received := map[string]int64{}
	for rows.Next() {
		var id string
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		received[id] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for id := range answered {
		switch n, ok := received[id]; {
		case !ok:
			t.Errorf("request %s was answered 2xx but is not stored", id)
		case n != 1:
			t.Errorf("request %s has %d request.received events, want 1", id, n)
		}
	}
	for id, n := range received {
		if n != 1 {
			t.Errorf("stored request %s has %d request.received events, want 1", id, n)
		}
	}
}
