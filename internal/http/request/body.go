package request

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/lethe-privacy/lethe"
)

// DefaultMaxBodyBytes is the body limit used when a caller passes none:
// every lethe body is a few hundred bytes, and 64 KiB leaves room for a
// long value to reach validation and get a message that says what is wrong.
const DefaultMaxBodyBytes = 64 << 10

// DefaultBodyIdleTimeout is how long a body may go without a byte arriving
// before it is taken as shorter than its Content-Length.
const DefaultBodyIdleTimeout = 5 * time.Second

// ReadBody returns r's body, at most limit bytes (else ETOOLARGE, decided
// from Content-Length before reading when the client declares it). An
// empty body is EINVALID, and so is a body that ends, or stops arriving
// (see WatchBody), before its Content-Length: a truncated body has no
// meaning to judge. Profiles that must see the raw bytes (to verify a
// signature) call it directly.
func ReadBody(r *http.Request, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil, errMissingBody()
	}
	// One byte over the limit is enough to know the body is too large.
	data, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
			// A server-wide cap was hit first.
			return nil, tooLarge(min(limit, mbe.Limit))
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, errTruncated()
		}
		return nil, lethe.Errorf(lethe.EINVALID, "request body could not be read")
	}
	if int64(len(data)) > limit {
		return nil, tooLarge(limit)
	}
	return data, nil
}

// ErrTruncated is in the chain of the error of a body that ended, or
// stopped arriving, before its Content-Length, beside its *lethe.Error: a
// surface whose statuses for EINVALID differ (422) can still answer it 400.
var ErrTruncated = errors.New("request body truncated")

func errTruncated() error {
	return fmt.Errorf("%w: %w", lethe.Errorf(lethe.EINVALID, "request body is shorter than its Content-Length"), ErrTruncated)
}

// ReadForm reads an application/x-www-form-urlencoded body (at most limit
// bytes; Content-Type checked as ReadJSON checks JSON) and returns its
// fields. A field given twice is EINVALID (RFC 6749 3.2: parameters must
// not be repeated), and so is a body that is not valid form encoding.
// Messages never quote a name or a value.
func ReadForm(r *http.Request, limit int64) (url.Values, error) {
	if err := checkMediaType(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded"); err != nil {
		return nil, err
	}
	data, err := ReadBody(r, limit)
	if err != nil {
		return nil, err
	}
	vs, err := url.ParseQuery(string(data))
	if err != nil {
		return nil, lethe.Errorf(lethe.EINVALID, "request body is not valid form encoding")
	}
	for _, v := range vs {
		if len(v) > 1 {
			return nil, lethe.Errorf(lethe.EINVALID, "request body has a parameter more than once")
		}
	}
	return vs, nil
}

// WatchBody makes a stalled body fail fast: each read of r's body may wait
// at most idle for bytes to arrive, and never past the end of readTimeout
// from now (the server's own bound on the whole request, which the
// per-read deadline replaces). Without it a client that declares a
// Content-Length and sends less holds the handler until the server's read
// timeout; with it the read fails and ReadBody answers EINVALID within
// idle. w must reach the connection (http.NewResponseController); where it
// does not (a test recorder) the body is left as it is.
func WatchBody(w http.ResponseWriter, r *http.Request, idle, readTimeout time.Duration) {
	if r.Body == nil || r.Body == http.NoBody || idle <= 0 {
		return
	}
	rc := http.NewResponseController(w)
	end := time.Now().Add(readTimeout)
	if rc.SetReadDeadline(earlier(time.Now().Add(idle), end)) != nil {
		return
	}
	r.Body = &watchedBody{ReadCloser: r.Body, rc: rc, idle: idle, end: end}
}

type watchedBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
	end  time.Time
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	// Once the body is over (err != nil) the deadline is left alone:
	// net/http clears it as it starts reading the connection in the
	// background, and one set now would cancel the request's context
	// when it passed.
	if n > 0 && err == nil {
		// Progress: the next read gets a fresh idle period.
		_ = b.rc.SetReadDeadline(earlier(time.Now().Add(b.idle), b.end))
	}
	return n, err
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
