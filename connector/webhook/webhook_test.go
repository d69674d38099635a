package webhook_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/connectortest"
	"github.com/lethe-privacy/lethe/connector/webhook"
	"github.com/lethe-privacy/lethe/signature"
)

const secret = "s3cret-for-tests-only-0123456789"

var (
	subjectEmail = "ada.webhook+test@example.com"
	subjectUser  = "u-webhook-subject-4711"
)

func seed() []record {
	return []record{
		{"orders", subjectEmail, ""},
		{"orders", "", subjectUser},
		{"sessions", "", subjectUser},
		{"sessions", subjectEmail, subjectUser},
		{"orders", "grace@example.com", "u-other-1"},
		{"sessions", "", "u-other-1"},
	}
}

func subject() connector.Subject {
	return connector.Subject{RequestID: "req-webhook-1", Identities: []lethe.Identity{
		{Type: lethe.IdentityEmail, Value: subjectEmail},
		{Type: lethe.IdentityUserID, Value: subjectUser},
		// Not allowed for this target: never sent.
		{Type: lethe.IdentityPhone, Value: "+4915112345678"},
	}}
}

func options(s *service) webhook.Options {
	return webhook.Options{
		URL:          s.srv.URL + "/erase",
		PlanURL:      s.srv.URL + "/plan",
		VerifyURL:    s.srv.URL + "/verify",
		Secret:       secret,
		Identities:   []lethe.IdentityType{lethe.IdentityEmail, lethe.IdentityUserID},
		Timeout:      2 * time.Second,
		PollInterval: 5 * time.Millisecond,
		PollMax:      20 * time.Millisecond,
		AllowHosts:   []string{"127.0.0.1"}, // the test service listens on loopback
	}
}

func open(t testing.TB, o webhook.Options) *webhook.Connector {
	t.Helper()
	c, err := webhook.Open("svc", o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func harness(async bool) connectortest.Harness {
	return connectortest.Harness{Setup: func(tb testing.TB) connectortest.Fixture {
		s := newService(tb, secret, seed()...)
		s.async, s.pendingPolls = async, 2
		sub := subject()
		c := call{Identities: map[string][]string{"email": {subjectEmail}, "user_id": {subjectUser}}}
		return connectortest.Fixture{
			Connector: open(tb, options(s)),
			Subject:   sub,
			Snapshot:  func(testing.TB) (string, string) { return s.dump(c) },
			Remaining: func(testing.TB) int64 {
				a, _ := s.dump(c)
				if a == "" {
					return 0
				}
				return int64(strings.Count(a, "\n") + 1)
			},
		}
	}}
}

// TestConformance runs the suite against a service that erases at once,
// and against one that answers 202 and confirms through its check URL.
func TestConformance(t *testing.T) {
	t.Run("sync", func(t *testing.T) { connectortest.Exercise(t, harness(false)) })
	t.Run("async", func(t *testing.T) { connectortest.Exercise(t, harness(true)) })
}

func TestInfoAndOptions(t *testing.T) {
	if in := webhook.Info(); in.Kind != "webhook" || in.New == nil {
		t.Fatalf("Info() = %+v", in)
	}
	doc := `
url: https://billing.internal/lethe/erase
secret: 0123456789abcdef0123
identities: [email, user_id]
callback_base_url: https://lethe.internal:8080
timeout: 5s
confirm_within: 2h
`
	tgt := connector.Target{Name: "billing", Kind: webhook.Kind, Decode: func(v any) error { return yaml.Unmarshal([]byte(doc), v) }}
	c, err := webhook.New(context.Background(), tgt)
	if err != nil {
		t.Fatal(err)
	}
	if !c.AcceptsCallbacks() || c.ConfirmWithin() != 2*time.Hour {
		t.Errorf("callbacks %v, confirm within %s", c.AcceptsCallbacks(), c.ConfirmWithin())
	}
	bad := []webhook.Options{
		{Secret: secret, Identities: []lethe.IdentityType{"email"}},                                                       // no url
		{URL: "ftp://x/y", Secret: secret, Identities: []lethe.IdentityType{"email"}},                                     // scheme
		{URL: "https://x/y", Secret: "short", Identities: []lethe.IdentityType{"email"}},                                  // secret
		{URL: "https://x/y", Secret: secret},                                                                              // identities
		{URL: "https://x/y", Secret: secret, Identities: []lethe.IdentityType{"nope"}},                                    // type
		{URL: "https://x/y", Secret: secret, Identities: []lethe.IdentityType{"email"}, Timeout: -1},                      // timeout
		{URL: "http://billing.example/y", Secret: secret, Identities: []lethe.IdentityType{"email"}},                      // plain http to a public host
		{URL: "https://x/y", VerifyURL: "http://10.0.0.1/v", Secret: secret, Identities: []lethe.IdentityType{"email"}},   // plain http to a private host
		{URL: "https://x/y", Secret: secret, Identities: []lethe.IdentityType{"email"}, AllowHosts: []string{"http://x"}}, // allow entry
	}
	for i, o := range bad {
		if _, err := webhook.Open("svc", o); err == nil {
			t.Errorf("options #%d accepted", i)
		}
	}
}

// TestSignatureVector pins the signature format documented for services
// (package signature signs and checks every webhook call).
func TestSignatureVector(t *testing.T) {
	body := []byte(`{"status":"done"}`)
	at := time.Unix(1700000000, 0)
	got := signature.Sign(at, body, []byte("foobar"))
	want := "t=1700000000,v1=" + hmacHex("foobar", "1700000000."+string(body))
	if got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	if err := signature.Verify([]byte("foobar"), got, body, at.Add(time.Minute)); err != nil {
		t.Errorf("Verify: %v", err)
	}
	for name, tc := range map[string]struct {
		header string
		now    time.Time
		want   error
	}{
		"expired":   {got, at.Add(10 * time.Minute), signature.ErrExpired},
		"tampered":  {strings.Replace(got, "v1=", "v1=0", 1), at, signature.ErrInvalid},
		"malformed": {"v1=abc", at, signature.ErrMissing},
		"empty":     {"", at, signature.ErrMissing},
	} {
		if err := signature.Verify([]byte("foobar"), tc.header, body, tc.now); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

// TestAnswers checks how each answer of the erase endpoint is classified.
func TestAnswers(t *testing.T) {
	tests := []struct {
		name   string
		status int
		header map[string]string
		body   string
		check  func(t *testing.T, rep lethe.Report, err error)
	}{
		{"done", 200, nil, `{"status":"done","counts":{"sessions":2}}`, func(t *testing.T, rep lethe.Report, err error) {
			if err != nil || rep.Total() != 2 {
				t.Errorf("got %v, %v", rep, err)
			}
		}},
		{"queued is not done", 200, nil, `{"status":"queued"}`, wantPending(0)},
		{"202 is never done", 202, nil, `{"status":"done","counts":{"sessions":2}}`, wantPending(0)},
		{"429 with Retry-After", 429, map[string]string{"Retry-After": "7"}, ``, wantPending(7 * time.Second)},
		{"503 without Retry-After", 503, nil, ``, wantRetryable},
		{"500", 500, nil, ``, wantRetryable},
		{"400", 400, nil, ``, wantPermanent},
		{"redirect", 302, map[string]string{"Location": "https://elsewhere.example/"}, ``, wantPermanent},
		{"failed", 200, nil, `{"status":"failed"}`, wantPermanent},
		{"bad object name", 200, nil, `{"status":"done","counts":{"ada@example.com":1}}`, wantPermanent},
		{"foreign check_url", 202, nil, `{"status":"pending","check_url":"https://elsewhere.example/x"}`, wantPermanent},
		{"not json", 200, nil, `<html>`, wantRetryable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptestServer(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			})
			o := options(&service{srv: srv})
			rep, err := open(t, o).Erase(context.Background(), subject())
			if err != nil && (strings.Contains(err.Error(), subjectEmail) || strings.Contains(err.Error(), subjectUser)) {
				t.Errorf("error holds an identity value: %v", err)
			}
			tt.check(t, rep, err)
		})
	}
}

func wantPending(after time.Duration) func(*testing.T, lethe.Report, error) {
	return func(t *testing.T, rep lethe.Report, err error) {
		var p *connector.PendingError
		if !errors.As(err, &p) {
			t.Fatalf("got %v, want pending", err)
		}
		if after > 0 && p.After != after {
			t.Errorf("after = %s, want %s", p.After, after)
		}
		if rep.Total() != 0 {
			t.Errorf("a pending answer reported %d rows", rep.Total())
		}
	}
}

func wantRetryable(t *testing.T, _ lethe.Report, err error) {
	if err == nil || connector.IsPending(err) || connector.IsPermanent(err) {
		t.Errorf("got %v, want a retryable error", err)
	}
}

func wantPermanent(t *testing.T, _ lethe.Report, err error) {
	if !connector.IsPermanent(err) {
		t.Errorf("got %v, want a permanent error", err)
	}
}

// TestOnlyAllowedIdentities: the phone is never sent, and a subject with
// no allowed identity makes no call at all.
func TestOnlyAllowedIdentities(t *testing.T) {
	var bodies []string
	srv := httptestServer(t, func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 4096)
		n, _ := r.Body.Read(b)
		bodies = append(bodies, string(b[:n]))
		w.Write([]byte(`{"status":"done","counts":{}}`))
	})
	c := open(t, options(&service{srv: srv}))
	if _, err := c.Erase(context.Background(), subject()); err != nil {
		t.Fatal(err)
	}
	if len(bodies) != 1 || strings.Contains(bodies[0], "4915112345678") || !strings.Contains(bodies[0], subjectUser) {
		t.Errorf("bodies = %q", bodies)
	}
	phoneOnly := connector.Subject{RequestID: "r", Identities: []lethe.Identity{{Type: lethe.IdentityPhone, Value: "+4915112345678"}}}
	if rep, err := c.Erase(context.Background(), phoneOnly); err != nil || len(rep.Items) != 0 || len(bodies) != 1 {
		t.Errorf("phone-only subject: %v, %v, %d calls", rep, err, len(bodies))
	}
}

// TestPrivateAddressRefusedByDefault: without allow_hosts, a service on a
// loopback address is never called; the refusal is permanent.
func TestPrivateAddressRefusedByDefault(t *testing.T) {
	var hits atomic.Int64
	srv := httptestServer(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	o := options(&service{srv: srv})
	o.AllowHosts = nil
	_, err := open(t, o).Erase(context.Background(), subject())
	if !connector.IsPermanent(err) || !strings.Contains(err.Error(), "allow_hosts") {
		t.Fatalf("Erase = %v, want a permanent refusal naming allow_hosts", err)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("%d calls reached the loopback service, want none", n)
	}
}
