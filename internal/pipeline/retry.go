package pipeline

import (
	"math/rand/v2"
	"time"

	"github.com/riverqueue/river/rivertype"
)

// retryPolicy is capped exponential backoff with "equal jitter": half of the
// delay is fixed so a retry never comes too early, the other half random so
// jobs that failed together (a target went down) spread out when retrying.
type retryPolicy struct {
	base, max time.Duration
}

// NextRetry is measured from the wall clock, not Config.Now, because River
// compares it with its own clock when it picks the job up again.
func (p retryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(p.delay(job.Attempt))
}

// delay returns the wait after the given (1-based) failed attempt.
func (p retryPolicy) delay(attempt int) time.Duration {
	d := p.max
	if attempt < 1 {
		attempt = 1
	}
	// Shifting past ~62 bits overflows; by then the cap applies anyway.
	if attempt <= 62 {
		if b := p.base << (attempt - 1); b > 0 && b>>(attempt-1) == p.base && b < p.max {
			d = b
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}
