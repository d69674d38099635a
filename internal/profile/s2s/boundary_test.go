package s2s_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/profile/profiletest"
)

// TestRateLimitWindowBoundary: 100 concurrent signed requests around the
// instant a fixed window opened by the client's first request would end,
// 49 one second before it and 51 one second after. The contract's "50
// requests per 10 minutes" holds at every instant, so at most 50 of the
// 100 (2 seconds apart) are accepted; the rest are 429. A fixed window
// accepted 99 of them.
func TestRateLimitWindowBoundary(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		f := newSeeded(t, b)
		acceptedID(t, f.signed(t, `{"user_id":"first"}`))
		burst := func(name string, n int) (accepted int) {
			t.Helper()
			codes := make([]int, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					codes[i] = f.signed(t, fmt.Sprintf(`{"user_id":"%s-%d"}`, name, i)).Code
				})
			}
			wg.Wait()
			for i, c := range codes {
				switch c {
				case http.StatusOK:
					accepted++
				case http.StatusTooManyRequests:
				default:
					t.Errorf("%s request %d: status %d, want 200 or 429", name, i, c)
				}
			}
			return accepted
		}
		f.Clock.Advance(10*time.Minute - time.Second)
		before := burst("before", 49)
		f.Clock.Advance(2 * time.Second)
		after := burst("after", 51)
		if before+after > 50 {
			t.Fatalf("%d + %d of 100 requests within 2 seconds accepted, want at most 50", before, after)
		}
		// The first request left the window just before the second burst:
		// exactly one place is free then.
		if before != 49 || after != 1 {
			t.Errorf("%d before and %d after the boundary accepted, want 49 and 1", before, after)
		}
	})
}
