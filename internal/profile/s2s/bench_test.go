package s2s_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/clients"
	"github.com/lethe-privacy/lethe/internal/intake"
	"github.com/lethe-privacy/lethe/internal/profile/profiletest"
	"github.com/lethe-privacy/lethe/internal/profile/s2s"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// BenchmarkCreate sends b.N signed requests, each for a new subject, from
// 32 concurrent callers through the s2s handler on each store, as serve
// wires it (the API key lookup, the rate limiter serve opens by default,
// intake's group commit; no job queue: BenchmarkSubmit in internal/intake
// counts River's insert), and reports the process's CPU per request.
// Profile with -cpuprofile:
//
//	go test -run '^$' -bench Create -benchtime 3000x -cpuprofile cpu.out ./internal/profile/s2s
func BenchmarkCreate(b *testing.B) {
	for _, dialect := range testdb.Dialects {
		b.Run(dialect, func(b *testing.B) {
			ctx := context.Background()
			k := testdb.Keyring(b)
			st := testdb.OpenStore(b, dialect)
			cs, err := clients.New(st, k, clients.Config{})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := cs.Create(ctx, clients.CreateParams{Name: "partner", APIKey: seedAPIKey, Secret: seedSecret}); err != nil {
				b.Fatal(err)
			}
			limiter, closeLimiter, err := ratelimit.Open(ctx, "", st, time.Now)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { closeLimiter() })
			h, err := s2s.New(s2s.Options{
				Intake: intake.New(st, profiletest.NopQueue{}, k, intake.Config{}), Clients: cs, Limiter: limiter,
				Rules:  ratelimit.Rules{Default: ratelimit.Rule{Limit: 1 << 30, Window: time.Minute}},
				Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
			})
			if err != nil {
				b.Fatal(err)
			}
			mux := http.NewServeMux()
			h.Mount(mux)
			var next atomic.Int64
			b.SetParallelism(16)
			testdb.PerRequest(b, func() {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						body := fmt.Sprintf(`{"user_id":"user-%d"}`, next.Add(1))
						r := httptest.NewRequest(http.MethodPost, "https://s2s.example.com"+s2s.Path, strings.NewReader(body))
						r.Header.Set("Content-Type", "application/json")
						r.Header.Set("X-API-KEY", seedAPIKey)
						r.Header.Set("Authorization", s2s.Sign([]byte(body), []byte(seedSecret)))
						w := httptest.NewRecorder()
						mux.ServeHTTP(w, r)
						if w.Code != http.StatusOK {
							b.Errorf("answer %d %s", w.Code, w.Body)
							return
						}
					}
				})
			})
		})
	}
}
