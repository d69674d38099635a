// Command lethe-load measures intake on a running lethe: N concurrent
// clients submit M deletion requests through the native API or the signed
// S2S endpoint, and it reports how long each request took from its
// submission until the request list showed it completed. The API's times
// have whole seconds, so the harness polls the list of completed requests
// itself (newest first, only as far back as the oldest request still open,
// at most every -poll) and times each request on its own clock:
// resolution about -poll plus one listing.
//
// Under steady load (-rate) the list is polled while requests are still
// being sent, so a request is timed from its own submission to its own
// completion, not to the end of the phase. A burst (no -rate) is polled
// once every answer is in, so that the burst's intake figure is not shared
// with a concurrent reader; a request that completed during the burst's
// intake is then timed up to the end of intake (the drain time, p99 and
// max are what a burst measures).
//
// It starts nothing itself; scripts/load starts the server and runs it.
// Every request names a different subject (prefix + index), so none is a
// duplicate of another. The S2S client's rate limit must be raised in the
// server's config (rate_limits.clients.<name>.s2s), or its published limit
// of 50 per 10 minutes stops the run after 50.
//
//	lethe-load -url http://127.0.0.1:8080 -mode native -token $ADMIN -n 1000 -c 50
//	lethe-load -url ... -mode s2s -api-key K -secret S -token $ADMIN -n 1000 -c 50
//
// -token is needed in both modes: completion is read through the native
// API as the admin.
//
// Helper modes for the in-run baselines of scripts/load, scripts/load-erase
// and scripts/load-scale (docs/load.md), each given as the first argument:
//
//	lethe-load baseline-server ...  intake ceiling: HMAC check + one insert
//	lethe-load webhook-server ...   a webhook target answering done after -delay
//	lethe-load erase-baseline ...   hand-written SQL erasure of shop subjects
//	lethe-load shop-reset ...       put shop subjects back as generated
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type options struct {
	url, mode, token, apiKey, secret, prefix string
	emailFormat                              string
	n, c, first                              int
	wait                                     time.Duration
	// rate > 0: open loop, rate requests per second for duration, each
	// sent on schedule whether or not earlier ones were answered (c
	// bounds how many are in flight).
	rate     float64
	duration time.Duration
	// poll is the shortest pause between two polls of the request list.
	poll time.Duration
}

func main() {
	if len(os.Args) > 1 && !strings.HasPrefix(os.Args[1], "-") {
		if err := subcommand(os.Args[1], os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "lethe-load:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.StringVar(&o.url, "url", "http://127.0.0.1:8080", "base URL of the lethe server")
	flag.StringVar(&o.mode, "mode", "native", "native (POST /v1/deletion-requests) or s2s (POST /user_deletion_requests)")
	flag.StringVar(&o.token, "token", os.Getenv("LETHE_ADMIN_TOKEN"), "admin bearer token: submits (native) and reads completion (both)")
	flag.StringVar(&o.apiKey, "api-key", "", "s2s X-API-KEY")
	flag.StringVar(&o.secret, "secret", "", "s2s shared secret (HMAC-SHA256 key)")
	flag.StringVar(&o.prefix, "prefix", "load", "subject prefix: native emails are <prefix>-<i>@load.example, s2s user ids <prefix>-<i>")
	flag.StringVar(&o.emailFormat, "email-format", "", "native mode: fmt format of the subject's email given its index, e.g. user%d@example.com (overrides -prefix)")
	flag.IntVar(&o.first, "first", 0, "index of the first subject")
	flag.IntVar(&o.n, "n", 1000, "requests to submit")
	flag.IntVar(&o.c, "c", 50, "concurrent clients")
	flag.DurationVar(&o.wait, "wait", 10*time.Minute, "how long to wait for every request to end (0: do not wait)")
	flag.Float64Var(&o.rate, "rate", 0, "steady load: requests per second, sent on schedule for -duration (overrides -n; -c bounds requests in flight)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long -rate lasts")
	flag.DurationVar(&o.poll, "poll", 50*time.Millisecond, "how often the request list is polled at most (the pause is also at least twice the last poll's duration)")
	flag.Parse()
	if err := run(context.Background(), o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "lethe-load:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, w io.Writer) error {
	if o.mode != "native" && o.mode != "s2s" {
		return fmt.Errorf("-mode must be native or s2s")
	}
	if o.token == "" || (o.mode == "s2s" && (o.apiKey == "" || o.secret == "")) {
		return fmt.Errorf("need -token, and -api-key and -secret for s2s")
	}
	if o.rate > 0 {
		o.n = int(o.rate * o.duration.Seconds())
	}
	if o.n < 1 || o.c < 1 {
		return fmt.Errorf("-n and -c must be at least 1 (and -rate × -duration)")
	}
	o.url = strings.TrimRight(o.url, "/")
	client := &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: o.c, MaxConnsPerHost: o.c},
	}

	lat := make([]time.Duration, o.n)
	tr := newTracker()
	var (
		next   atomic.Int64
		errs   atomic.Int64
		status sync.Map // code -> *atomic.Int64
		first  sync.Once
		sample string
	)
	began := time.Now()
	// Steady load is polled while it is sent (see the package comment).
	polling := make(chan error, 1)
	if o.wait > 0 && o.rate > 0 {
		go func() { polling <- tr.poll(ctx, client, o) }()
	}
	one := func(i int) {
		t0 := time.Now()
		id, code, err := submit(ctx, client, o, o.first+i)
		lat[i] = time.Since(t0)
		v, _ := status.LoadOrStore(code, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
		if err != nil {
			errs.Add(1)
			first.Do(func() { sample = err.Error() })
			return
		}
		tr.add(id, t0)
	}
	var wg sync.WaitGroup
	if o.rate > 0 {
		inFlight := make(chan struct{}, o.c)
		for i := range o.n {
			time.Sleep(time.Until(began.Add(time.Duration(float64(i) / o.rate * float64(time.Second)))))
			inFlight <- struct{}{}
			wg.Go(func() {
				defer func() { <-inFlight }()
				one(i)
			})
		}
	} else {
		for range o.c {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= o.n {
						return
					}
					one(i)
				}
			})
		}
	}
	wg.Wait()
	took := time.Since(began)
	tr.allSent()

	slices.Sort(lat)
	codes := []string{}
	status.Range(func(k, v any) bool {
		codes = append(codes, fmt.Sprintf("%d:%d", k, v.(*atomic.Int64).Load()))
		return true
	})
	slices.Sort(codes)
	rps := float64(o.n) / took.Seconds()
	fmt.Fprintf(w, "%s intake: %d requests, %d clients, %.2fs, %.1f req/s; latency p50 %s p95 %s p99 %s max %s; errors %d; status %s\n",
		o.mode, o.n, o.c, took.Seconds(), rps, ms(pct(lat, 50)), ms(pct(lat, 95)), ms(pct(lat, 99)), ms(lat[len(lat)-1]), errs.Load(), strings.Join(codes, " "))
	if sample != "" {
		fmt.Fprintf(w, "first error: %s\n", sample)
	}
	result := fmt.Sprintf("RESULT mode=%s n=%d c=%d rate=%g rps=%.1f p50_ms=%.1f p95_ms=%.1f p99_ms=%.1f errors=%d",
		o.mode, o.n, o.c, o.rate, rps, msf(pct(lat, 50)), msf(pct(lat, 95)), msf(pct(lat, 99)), errs.Load())

	if o.wait > 0 {
		if o.rate <= 0 {
			go func() { polling <- tr.poll(ctx, client, o) }()
		}
		if err := <-polling; err != nil {
			return err
		}
		done, failed, last := tr.results()
		// The whole run: from the first submission until the last
		// request was seen completed.
		wall := last.Sub(began)
		slices.Sort(done)
		if len(done) > 0 {
			sps := float64(len(done)) / wall.Seconds()
			fmt.Fprintf(w, "%s request-to-completed: %d completed, %d failed; p50 %s p99 %s max %s; all done after %.2fs: %.1f subjects/s\n",
				o.mode, len(done), failed, ms(pct(done, 50)), ms(pct(done, 99)), ms(done[len(done)-1]), wall.Seconds(), sps)
			result += fmt.Sprintf(" completed=%d failed=%d done_p50_ms=%.0f done_p99_ms=%.0f wall_s=%.2f subjects_s=%.1f",
				len(done), failed, msf(pct(done, 50)), msf(pct(done, 99)), wall.Seconds(), sps)
		}
	}
	fmt.Fprintln(w, result)
	return nil
}

// submit sends request i and returns the created request's id.
func submit(ctx context.Context, client *http.Client, o options, i int) (string, int, error) {
	var (
		body []byte
		path string
		hdr  = http.Header{"Content-Type": []string{"application/json"}}
	)
	subject := fmt.Sprintf("%s-%d", o.prefix, i)
	if o.mode == "native" {
		path = "/v1/deletion-requests"
		email := subject + "@load.example"
		if o.emailFormat != "" {
			email = fmt.Sprintf(o.emailFormat, i)
		}
		body, _ = json.Marshal(map[string]any{"identities": []map[string]string{{"type": "email", "value": email}}})
		hdr.Set("Authorization", "Bearer "+o.token)
	} else {
		path = "/user_deletion_requests"
		body, _ = json.Marshal(map[string]string{"user_id": subject})
		// The signature is of the exact bytes sent, computed per body.
		m := hmac.New(sha256.New, []byte(o.secret))
		m.Write(body)
		hdr.Set("X-API-KEY", o.apiKey)
		hdr.Set("Authorization", hex.EncodeToString(m.Sum(nil)))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.url+path, bytes.NewReader(body))
	if err != nil {
		return "", 0, err
	}
	req.Header = hdr
	resp, err := client.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", resp.StatusCode, err
	}
	if resp.StatusCode >= 300 {
		return "", resp.StatusCode, fmt.Errorf("status %d: %.200s", resp.StatusCode, b)
	}
	var v struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.ID == "" {
		return "", resp.StatusCode, fmt.Errorf("answer without an id: %.200s", b)
	}
	return v.ID, resp.StatusCode, nil
}

type listPage struct {
	Data []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	} `json:"data"`
	NextCursor string `json:"next_cursor"`
}

// tracker holds the requests sent and not yet seen ended, and how long
// each ended one took.
type tracker struct {
	mu     sync.Mutex
	open   map[string]time.Time // id -> when it was sent
	sent   bool                 // every submission has been answered
	done   []time.Duration
	failed int
	last   time.Time // when the last request was seen ended
}

func newTracker() *tracker { return &tracker{open: map[string]time.Time{}} }

func (t *tracker) add(id string, sentAt time.Time) {
	t.mu.Lock()
	t.open[id] = sentAt
	t.mu.Unlock()
}

func (t *tracker) allSent() {
	t.mu.Lock()
	t.sent = true
	t.mu.Unlock()
}

func (t *tracker) results() ([]time.Duration, int, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.done, t.failed, t.last
}

// oldest returns the smallest open id ("" when none is open) and whether
// every submission has been answered.
func (t *tracker) oldest() (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	least := ""
	for id := range t.open {
		if least == "" || id < least {
			least = id
		}
	}
	return least, t.sent
}

// seen records the requests of one listing taken at now.
func (t *tracker) seen(p listPage, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range p.Data {
		at, ok := t.open[r.ID]
		if !ok {
			continue
		}
		switch r.Status {
		case "completed":
			t.done = append(t.done, now.Sub(at))
		case "failed", "canceled", "denied":
			t.failed++
		default:
			continue
		}
		delete(t.open, r.ID)
		t.last = now
	}
}

// endedOther are the terminal statuses besides completed: a request that
// ends in one of them counts as failed.
var endedOther = []string{"failed", "canceled", "denied"}

// poll reads the request list until every submission has been answered
// and every request it created has ended. It lists completed requests,
// newest first by id (uuid v7, ordered by time), only until it passes the
// oldest open request: while a backlog is open that is the few completed
// since, not the backlog itself. The other terminal statuses are listed
// the same way once a second. A request counts as completed at the time
// of the poll that first showed it so (the time the poll began: the
// listing was read after it). Polls start at least -poll apart and pause
// at least twice the last poll's duration, so the poller never takes more
// than a third of one connection's time from the server it measures.
func (t *tracker) poll(ctx context.Context, client *http.Client, o options) error {
	deadline := time.Now().Add(o.wait)
	if o.rate > 0 {
		deadline = deadline.Add(o.duration)
	}
	var others time.Time // when the other terminal statuses were last listed
	for {
		oldest, allSent := t.oldest()
		if oldest == "" && allSent {
			return nil
		}
		start := time.Now()
		if oldest != "" {
			statuses := []string{"completed"}
			if start.Sub(others) >= time.Second {
				statuses = append(statuses, endedOther...)
				others = start
			}
			for _, status := range statuses {
				if err := t.list(ctx, client, o, status, oldest, start); err != nil {
					return err
				}
			}
		}
		if time.Now().After(deadline) {
			t.mu.Lock()
			n := len(t.open)
			t.mu.Unlock()
			return fmt.Errorf("%d requests still open after %s", n, o.wait)
		}
		took := time.Since(start)
		time.Sleep(max(o.poll-took, 2*took))
	}
}

// list reads the requests in status, newest first, back to oldest.
func (t *tracker) list(ctx context.Context, client *http.Client, o options, status, oldest string, at time.Time) error {
	cursor := ""
	for {
		q := url.Values{"limit": {"200"}, "status": {status}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var p listPage
		if err := getJSON(ctx, client, o, "/v1/deletion-requests?"+q.Encode(), &p); err != nil {
			return err
		}
		t.seen(p, at)
		if p.NextCursor == "" || len(p.Data) == 0 || p.Data[len(p.Data)-1].ID <= oldest {
			return nil
		}
		cursor = p.NextCursor
	}
}

func getJSON(ctx context.Context, client *http.Client, o options, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.url+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+o.token)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d: %.200s", path, resp.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}

// pct returns the p-th percentile of sorted (nearest rank).
func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}

func ms(d time.Duration) string   { return fmt.Sprintf("%.1fms", msf(d)) }
func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
