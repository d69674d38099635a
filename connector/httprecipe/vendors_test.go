package httprecipe_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/connectortest"
	"github.com/lethe-privacy/lethe/connector/httprecipe"
	"github.com/lethe-privacy/lethe/connector/httprecipe/vendorfake"
)

var (
	subjEmail = lethe.Identity{Type: lethe.IdentityEmail, Value: "ada.recipe@example.com"}
	subjPhone = lethe.Identity{Type: lethe.IdentityPhone, Value: "+4915112345678"}
	subjUser  = lethe.Identity{Type: lethe.IdentityUserID, Value: "usr-recipe-subject-4711"}
	// Not known to any vendor.
	strangerEmail = lethe.Identity{Type: lethe.IdentityEmail, Value: "nobody.known@example.org"}
	strangerUser  = lethe.Identity{Type: lethe.IdentityUserID, Value: "usr-recipe-unknown-0001"}
)

// vendor is one recipe and the fake of its vendor.
type vendor struct {
	recipe   string
	fake     func(tb testing.TB) *vendorfake.Fake
	settings map[string]string
	path     string // appended to the fake's URL for base_url
	// people seeds the subject's records (ids 9001.. so Zendesk's numeric
	// ids work) and others'.
	subject []vendorfake.Person
	others  []vendorfake.Person
	ids     []lethe.Identity // the subject as a request gives it
	blind   bool             // neither a lookup nor verify calls
	status  bool             // an async status call
	partial bool             // the vendor has a partial outcome
	// noFailed: the vendor's status has no failed value (Amplitude's jobs
	// are staging, submitted or done), so failure is its refusal.
	noFailed bool
	oauth    bool
}

func people(withEmail, withPhone, withUser bool, n int) ([]vendorfake.Person, []vendorfake.Person) {
	var subj []vendorfake.Person
	for i := range n {
		p := vendorfake.Person{ID: []string{"9001", "9002"}[i]}
		if withEmail {
			p.Email = subjEmail.Value
		}
		if withPhone && i == 0 {
			p.Phone = subjPhone.Value
		}
		if withUser && i == 0 {
			p.UserID = subjUser.Value
		}
		subj = append(subj, p)
	}
	others := []vendorfake.Person{
		{ID: "8001", Email: "other.one@example.com", Phone: "+4915199999999", UserID: "usr-recipe-other-1"},
		{ID: "8002", Email: "other.two@example.com", UserID: "usr-recipe-other-2"},
	}
	return subj, others
}

func vendors() []vendor {
	var vs []vendor
	add := func(v vendor, email, phone, user bool, n int) {
		v.subject, v.others = people(email, phone, user, n)
		vs = append(vs, v)
	}
	add(vendor{recipe: "segment", fake: vendorfake.Segment, settings: map[string]string{"token": vendorfake.Token},
		ids: []lethe.Identity{subjUser, subjEmail}, blind: true, status: true, partial: true}, false, false, true, 1)
	add(vendor{recipe: "braze", fake: vendorfake.Braze, settings: map[string]string{"api_key": vendorfake.APIKey},
		ids: []lethe.Identity{subjUser, subjEmail, subjPhone}, blind: true}, true, true, true, 1)
	add(vendor{recipe: "amplitude", fake: vendorfake.Amplitude, settings: map[string]string{"api_key": vendorfake.APIKey, "secret_key": vendorfake.SecretKey},
		ids: []lethe.Identity{subjUser}, blind: true, status: true, noFailed: true}, false, false, true, 1)
	add(vendor{recipe: "mixpanel", fake: vendorfake.Mixpanel, path: "/api/app", settings: map[string]string{"project_token": vendorfake.ProjectToken, "oauth_token": vendorfake.Token},
		ids: []lethe.Identity{subjUser}, blind: true, status: true}, false, false, true, 1)
	add(vendor{recipe: "hubspot", fake: vendorfake.HubSpot, settings: map[string]string{"token": vendorfake.Token},
		ids: []lethe.Identity{subjEmail, subjUser}}, true, false, false, 1)
	add(vendor{recipe: "zendesk", fake: vendorfake.Zendesk, settings: map[string]string{"email": vendorfake.Agent, "api_token": vendorfake.Token},
		ids: []lethe.Identity{subjEmail}}, true, false, false, 2)
	add(vendor{recipe: "auth0", fake: vendorfake.Auth0, settings: map[string]string{"client_id": vendorfake.ClientID, "client_secret": vendorfake.ClientSecret},
		ids: []lethe.Identity{subjEmail}, oauth: true}, true, false, false, 2)
	add(vendor{recipe: "intercom", fake: vendorfake.Intercom, settings: map[string]string{"token": vendorfake.Token},
		ids: []lethe.Identity{subjEmail, subjUser}}, true, false, true, 2)
	add(vendor{recipe: "opendsr", fake: vendorfake.OpenDSR, settings: map[string]string{"username": vendorfake.Username, "password": vendorfake.Password},
		ids: []lethe.Identity{subjEmail, subjPhone, subjUser}, blind: true, status: true}, true, true, true, 1)
	return vs
}

// clock is a manual clock for blocks and tokens.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// setup starts v's fake with its people and opens the recipe against it.
func (v vendor) setup(tb testing.TB, now func() time.Time) (*vendorfake.Fake, *httprecipe.Connector) {
	tb.Helper()
	f := v.fake(tb)
	f.Add(v.subject...)
	f.Add(v.others...)
	settings := map[string]string{}
	for k, val := range v.settings {
		settings[k] = val
	}
	if v.recipe == "auth0" {
		settings["audience"] = f.URL + "/api/v2/"
	}
	if now == nil {
		now = time.Now
	}
	c, err := httprecipe.OpenAt(v.recipe, httprecipe.Options{
		Recipe: v.recipe, Settings: settings, BaseURL: f.URL + v.path,
		AllowHosts:   []string{"127.0.0.1"}, // the fake listens on loopback
		Timeout:      5 * time.Second,
		PollInterval: time.Millisecond, PollMax: 5 * time.Millisecond,
	}, now)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return f, c
}

func (v vendor) subjectIDs() []string {
	var out []string
	for _, p := range v.subject {
		out = append(out, p.ID)
	}
	return out
}

func (v vendor) fixture(tb testing.TB) connectortest.Fixture {
	f, c := v.setup(tb, nil)
	ids := v.subjectIDs()
	return connectortest.Fixture{
		Connector: c,
		Subject:   connector.Subject{RequestID: "req-" + v.recipe, Identities: v.ids},
		Blind:     v.blind,
		Snapshot:  func(testing.TB) (string, string) { return f.Dump(ids, false), f.Dump(ids, true) },
		Remaining: func(testing.TB) int64 { return f.Remaining(ids) },
	}
}

// TestRecipeConformance runs the connector suite for every recipe against
// the fake of its vendor.
func TestRecipeConformance(t *testing.T) {
	t.Parallel()
	for _, v := range vendors() {
		t.Run(v.recipe, func(t *testing.T) {
			t.Parallel()
			connectortest.Exercise(t, connectortest.Harness{Setup: v.fixture})
		})
	}
}

func noValue(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, id := range []lethe.Identity{subjEmail, subjPhone, subjUser, strangerEmail, strangerUser} {
		if strings.Contains(err.Error(), id.Value) {
			t.Errorf("error holds an identity value: %v", err)
		}
	}
	for _, s := range []string{"9001", "9002", vendorfake.Token, vendorfake.APIKey, vendorfake.Password, vendorfake.ClientSecret} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error holds a vendor id or credential: %v", err)
		}
	}
}

func subject(v vendor) connector.Subject {
	return connector.Subject{RequestID: "req-" + v.recipe, Identities: v.ids}
}

// TestRecipeThrottled: a 429 with Retry-After makes Erase pending for
// exactly that long, with no done and no call while the block lasts; after
// it the erasure completes.
func TestRecipeThrottled(t *testing.T) {
	t.Parallel()
	for _, v := range vendors() {
		t.Run(v.recipe, func(t *testing.T) {
			t.Parallel()
			clk := &clock{t: time.Now()}
			f, c := v.setup(t, clk.now)
			f.Throttle(1, "7")
			ctx := context.Background()
			s := subject(v)
			_, err := c.Erase(ctx, s)
			var p *connector.PendingError
			if !errors.As(err, &p) || p.After != 7*time.Second {
				t.Fatalf("429: got %v, want pending for the Retry-After's 7s", err)
			}
			noValue(t, err)
			calls := f.TotalHits()
			s.Checkpoint = p.Checkpoint
			if _, err := c.Erase(ctx, s); !connector.IsPending(err) {
				t.Fatalf("while blocked: %v, want pending", err)
			}
			if n := f.TotalHits(); n != calls {
				t.Errorf("%d calls left while the vendor's block lasted", n-calls)
			}
			clk.advance(8 * time.Second)
			if _, err := connectortest.EraseUntilDone(ctx, c, s, 20, 10*time.Millisecond); err != nil {
				t.Fatalf("after the block: %v", err)
			}
			if n := f.Remaining(v.subjectIDs()); n != 0 {
				t.Errorf("%d records remain", n)
			}
		})
	}
}

// TestRecipePendingThenDone: an async vendor's job stays pending for three
// status answers: Erase answers pending (the records still there, the job
// id in the report), then done; the evidence is the vendor's job id.
// Vendors without a status call confirm in the erase answer itself.
func TestRecipePendingThenDone(t *testing.T) {
	t.Parallel()
	for _, v := range vendors() {
		t.Run(v.recipe, func(t *testing.T) {
			t.Parallel()
			f, c := v.setup(t, nil)
			f.Jobs(3, "done")
			ctx := context.Background()
			s := subject(v)
			rep, err := c.Erase(ctx, s)
			if !v.status {
				if err != nil || f.Remaining(v.subjectIDs()) != 0 {
					t.Fatalf("no status call: Erase = %v, %d left; want done at once", err, f.Remaining(v.subjectIDs()))
				}
				return
			}
			var p *connector.PendingError
			if !errors.As(err, &p) {
				t.Fatalf("got %v, want pending", err)
			}
			if f.Remaining(v.subjectIDs()) == 0 {
				t.Fatalf("the fake finished before its status said so")
			}
			refs := []string{rep.Items[0].Reference}
			total := rep.Total()
			for i := 0; ; i++ {
				if i == 10 {
					t.Fatalf("still pending after 10 calls")
				}
				s.Checkpoint = p.Checkpoint
				rep, err = c.Erase(ctx, s)
				total += rep.Total()
				if rep.Items != nil && rep.Items[0].Reference != "" {
					refs = append(refs, rep.Items[0].Reference)
				}
				if err == nil {
					break
				}
				if !errors.As(err, &p) {
					t.Fatalf("got %v, want pending or done", err)
				}
			}
			if f.Remaining(v.subjectIDs()) != 0 {
				t.Errorf("done, but records remain")
			}
			if got, want := strings.Join(refs, ","), strings.Join(f.JobIDs(), ","); got != want {
				t.Errorf("evidence %q, want the vendor's job ids %q", got, want)
			}
			if total == 0 {
				t.Errorf("report counts nothing")
			}
		})
	}
}

// TestRecipeFailedOrPartial: a job the vendor reports failed (or partly
// done) fails the task, never done, with the vendor's reference and no
// identity; a vendor without a status refusing the call (a 4xx quoting the
// identity) fails it too.
func TestRecipeFailedOrPartial(t *testing.T) {
	t.Parallel()
	for _, v := range vendors() {
		outcomes := []string{"failed"}
		if v.partial {
			outcomes = append(outcomes, "partial")
		}
		for _, out := range outcomes {
			t.Run(v.recipe+"/"+out, func(t *testing.T) {
				t.Parallel()
				f, c := v.setup(t, nil)
				if v.status && !v.noFailed {
					f.Jobs(1, out)
				} else {
					f.FailDeletions(100)
				}
				_, err := connectortest.EraseUntilDone(context.Background(), c, subject(v), 20, 10*time.Millisecond)
				if err == nil || connector.IsPending(err) || !connector.IsPermanent(err) {
					t.Fatalf("got %v, want a permanent failure", err)
				}
				noValue(t, err)
				want := map[string]string{"failed": "failed", "partial": "partly done"}[out]
				if v.status && !v.noFailed && !strings.Contains(err.Error(), want) {
					t.Errorf("error does not say %q: %v", want, err)
				}
				if out == "failed" && f.Remaining(v.subjectIDs()) == 0 {
					t.Errorf("failed, yet nothing remains: the fake did not fail")
				}
			})
		}
	}
}

// TestRecipeCredentialsMidRun: an OAuth2 token that expires mid-run gets
// one new token and the run goes on; a static credential the vendor stops
// accepting mid-run fails the task (permanently: retrying cannot fix a
// key), never done, showing no credential.
func TestRecipeCredentialsMidRun(t *testing.T) {
	t.Parallel()
	for _, v := range vendors() {
		t.Run(v.recipe, func(t *testing.T) {
			t.Parallel()
			f, c := v.setup(t, nil)
			ctx := context.Background()
			s := subject(v)
			if _, err := c.Plan(ctx, s); err != nil {
				t.Fatal(err)
			}
			if v.oauth {
				if f.TokenHits() != 1 {
					t.Fatalf("%d token calls, want 1", f.TokenHits())
				}
				f.ExpireTokens()
				if _, err := connectortest.EraseUntilDone(ctx, c, s, 20, 10*time.Millisecond); err != nil {
					t.Fatalf("after the token expired: %v", err)
				}
				if n := f.TokenHits(); n != 2 {
					t.Errorf("%d token calls, want 2: one refresh after the 401", n)
				}
				if f.Remaining(v.subjectIDs()) != 0 {
					t.Errorf("records remain")
				}
				return
			}
			f.Revoke()
			_, err := connectortest.EraseUntilDone(ctx, c, s, 20, 10*time.Millisecond)
			if !connector.IsPermanent(err) || !strings.Contains(err.Error(), "401") {
				t.Fatalf("got %v, want a permanent 401", err)
			}
			noValue(t, err)
			if f.Remaining(v.subjectIDs()) == 0 {
				t.Errorf("refused, yet the records are gone")
			}
		})
	}
}

// TestRecipeUnknownIdentity: a subject the vendor does not know is done
// without error and without touching anyone; vendors lethe can read back
// report zero records.
func TestRecipeUnknownIdentity(t *testing.T) {
	t.Parallel()
	for _, v := range vendors() {
		t.Run(v.recipe, func(t *testing.T) {
			t.Parallel()
			f, c := v.setup(t, nil)
			before := f.Dump(nil, true)
			s := connector.Subject{RequestID: "req-unknown", Identities: []lethe.Identity{strangerEmail, strangerUser}}
			rep, err := connectortest.EraseUntilDone(context.Background(), c, s, 20, 10*time.Millisecond)
			if err != nil {
				t.Fatalf("Erase: %v", err)
			}
			if !v.blind && rep.Total() != 0 {
				t.Errorf("report counts %d records of someone the vendor does not know", rep.Total())
			}
			if err := c.Verify(context.Background(), s); err != nil {
				t.Errorf("Verify: %v", err)
			}
			if after := f.Dump(nil, true); after != before {
				t.Errorf("the vendor's data changed:\n%s\n---\n%s", before, after)
			}
		})
	}
}
