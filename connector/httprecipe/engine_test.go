package httprecipe_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
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

// variant loads a built-in recipe's text with replacements applied, as an
// operator's own copy of it would be.
func variant(t *testing.T, name string, repl ...string) *httprecipe.Recipe {
	t.Helper()
	b, err := os.ReadFile("recipes/" + name + ".yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(repl); i += 2 {
		if !strings.Contains(s, repl[i]) {
			t.Fatalf("%s has no %q", name, repl[i])
		}
		s = strings.ReplaceAll(s, repl[i], repl[i+1])
	}
	r, err := httprecipe.Parse([]byte(s), "recipe "+name)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func open(t *testing.T, r *httprecipe.Recipe, url string, settings map[string]string) *httprecipe.Connector {
	t.Helper()
	c, err := httprecipe.New("t", r, httprecipe.Options{Settings: settings, BaseURL: url, AllowHosts: []string{"127.0.0.1"},
		PollInterval: time.Millisecond, PollMax: 5 * time.Millisecond}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func many(n int, p func(i int) vendorfake.Person) []vendorfake.Person {
	out := make([]vendorfake.Person, n)
	for i := range n {
		out[i] = p(i)
	}
	return out
}

func ids(ps []vendorfake.Person) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

// TestLookupPagination: a lookup reads every page, by offset (Zendesk), by
// cursor (Intercom), and never past max_pages silently.
func TestLookupPagination(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := connector.Subject{RequestID: "r", Identities: []lethe.Identity{subjEmail}}
	t.Run("offset", func(t *testing.T) {
		f := vendorfake.Zendesk(t)
		mine := many(5, func(i int) vendorfake.Person {
			return vendorfake.Person{ID: fmt.Sprint(9100 + i), Email: subjEmail.Value}
		})
		f.Add(mine...)
		f.Add(vendorfake.Person{ID: "8001", Email: "other.one@example.com"})
		r := variant(t, "zendesk", "per_page=100", "per_page=2", "size: 100", "size: 2")
		c := open(t, r, f.URL, map[string]string{"email": vendorfake.Agent, "api_token": vendorfake.Token})
		plan, err := c.Plan(ctx, s)
		if err != nil || plan.Total() != 5 {
			t.Fatalf("Plan = %v, %v; want 5 records over 3 pages", plan, err)
		}
		if n := f.Hits("GET /api/v2/users/search.json"); n != 3 {
			t.Errorf("%d search calls, want 3", n)
		}
		if _, err := connectortest.EraseUntilDone(ctx, c, s, 10, time.Millisecond); err != nil || f.Remaining(ids(mine)) != 0 {
			t.Fatalf("Erase: %v, %d left", err, f.Remaining(ids(mine)))
		}
	})
	t.Run("cursor", func(t *testing.T) {
		f := vendorfake.Intercom(t)
		mine := many(3, func(i int) vendorfake.Person {
			return vendorfake.Person{ID: fmt.Sprint("ic-", i), Email: subjEmail.Value}
		})
		f.Add(mine...)
		r := variant(t, "intercom", "per_page: 50", "per_page: 1")
		c := open(t, r, f.URL, map[string]string{"token": vendorfake.Token})
		plan, err := c.Plan(ctx, s)
		if err != nil || plan.Total() != 3 {
			t.Fatalf("Plan = %v, %v; want 3 records over 3 pages", plan, err)
		}
		if n := f.Hits("POST /contacts/search"); n != 3 {
			t.Errorf("%d search calls, want 3", n)
		}
	})
	t.Run("max_pages", func(t *testing.T) {
		f := vendorfake.Zendesk(t)
		f.Add(many(5, func(i int) vendorfake.Person {
			return vendorfake.Person{ID: fmt.Sprint(9100 + i), Email: subjEmail.Value}
		})...)
		r := variant(t, "zendesk", "per_page=100", "per_page=2", "size: 100", "size: 2\n    max_pages: 2")
		c := open(t, r, f.URL, map[string]string{"email": vendorfake.Agent, "api_token": vendorfake.Token})
		_, err := c.Erase(ctx, s)
		if err == nil || connector.IsPending(err) || !strings.Contains(err.Error(), "max_pages") {
			t.Fatalf("Erase = %v, want an error naming max_pages", err)
		}
		if n := f.Remaining([]string{"9100", "9101", "9102", "9103", "9104"}); n != 5 {
			t.Errorf("%d of 5 records left: a partial lookup erased", n)
		}
	})
}

const linkRecipe = `
format: 1
name: linked
identities: {email: email}
lookup:
  identities: [email]
  request: {path: "/users?email={{value}}"}
  records: "$.users[*]"
  id: "$.id"
  paginate: {type: link}
erase:
  steps:
    - method: DELETE
      path: "/users/{{value}}"
      ok: [204]
`

// TestLookupLinkPagination follows rel="next" Link headers under the base
// URL, and refuses one that leads elsewhere.
func TestLookupLinkPagination(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	elsewhere := false
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		page := r.URL.Query().Get("page")
		next := map[string]string{"": "2", "2": "3"}[page]
		if next != "" {
			u := srv.URL
			if elsewhere {
				u = "http://localhost:1"
			}
			w.Header().Add("Link", fmt.Sprintf(`<%s/users?email=x&page=%s>; rel="next", <%s/users?page=1>; rel="first"`, u, next, u))
		}
		json.NewEncoder(w).Encode(map[string]any{"users": []map[string]string{{"id": "u" + page}}})
	}))
	t.Cleanup(srv.Close)
	r, err := httprecipe.Parse([]byte(linkRecipe), "recipe linked")
	if err != nil {
		t.Fatal(err)
	}
	c := open(t, r, srv.URL, nil)
	s := connector.Subject{RequestID: "r", Identities: []lethe.Identity{subjEmail}}
	plan, err := c.Plan(context.Background(), s)
	if err != nil || plan.Total() != 3 {
		t.Fatalf("Plan = %v, %v; want 3 records over 3 linked pages", plan, err)
	}
	mu.Lock()
	elsewhere = true
	mu.Unlock()
	if _, err := c.Plan(context.Background(), s); !connector.IsPermanent(err) || !strings.Contains(err.Error(), "outside the base URL") {
		t.Fatalf("link to another host: %v, want a permanent refusal", err)
	}
}

// TestBatching: identifiers go out in the vendor's batch size: Segment
// 5000 per regulation, Braze 50 per call (one kind each), HubSpot one.
func TestBatching(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	idsOf := func(n int, typ lethe.IdentityType, f string) []lethe.Identity {
		out := make([]lethe.Identity, n)
		for i := range out {
			out[i] = lethe.Identity{Type: typ, Value: fmt.Sprintf(f, i)}
		}
		return out
	}
	cases := []struct {
		v    string
		fake func(testing.TB) *vendorfake.Fake
		set  map[string]string
		ids  []lethe.Identity
		want []int
	}{
		{"segment", vendorfake.Segment, map[string]string{"token": vendorfake.Token}, idsOf(5001, lethe.IdentityUserID, "usr-batch-%05d"), []int{5000, 1}},
		{"braze", vendorfake.Braze, map[string]string{"api_key": vendorfake.APIKey},
			append(idsOf(120, lethe.IdentityUserID, "usr-batch-%03d"), idsOf(3, lethe.IdentityEmail, "batch%d@example.com")...), []int{3, 50, 50, 20}},
		{"hubspot", vendorfake.HubSpot, map[string]string{"token": vendorfake.Token}, idsOf(3, lethe.IdentityEmail, "batch%d@example.com"), []int{1, 1, 1}},
	}
	for _, tc := range cases {
		t.Run(tc.v, func(t *testing.T) {
			t.Parallel()
			f := tc.fake(t)
			for i, id := range tc.ids {
				p := vendorfake.Person{ID: fmt.Sprint(i)}
				if id.Type == lethe.IdentityEmail {
					p.Email = id.Value
				} else {
					p.UserID = id.Value
				}
				f.Add(p)
			}
			r, err := httprecipe.Load(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			c := open(t, r, f.URL, tc.set)
			rep, err := connectortest.EraseUntilDone(ctx, c, connector.Subject{RequestID: "r", Identities: tc.ids}, 20, time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Batches(); !slices.Equal(got, tc.want) {
				t.Errorf("batches %v, want %v", got, tc.want)
			}
			if rep.Total() != int64(len(tc.ids)) {
				t.Errorf("report counts %d, want %d", rep.Total(), len(tc.ids))
			}
		})
	}
}

// TestTwoStepsResume: Zendesk's permanent delete fails after the soft
// delete succeeded; the soft-deleted user no longer appears in search, so
// the batch's id is held in the checkpoint and the next call finishes it.
func TestTwoStepsResume(t *testing.T) {
	t.Parallel()
	f := vendorfake.Zendesk(t)
	f.Add(vendorfake.Person{ID: "9001", Email: subjEmail.Value}, vendorfake.Person{ID: "9002", Email: subjEmail.Value})
	f.Break("DELETE /api/v2/deleted_users/9001", 1)
	r, err := httprecipe.Load("zendesk")
	if err != nil {
		t.Fatal(err)
	}
	c := open(t, r, f.URL, map[string]string{"email": vendorfake.Agent, "api_token": vendorfake.Token})
	s := connector.Subject{RequestID: "r", Identities: []lethe.Identity{subjEmail}}
	rep, err := c.Erase(context.Background(), s)
	var p *connector.PendingError
	if !errors.As(err, &p) {
		t.Fatalf("got %v, want pending after the soft delete", err)
	}
	noValue(t, err)
	if strings.Contains(p.Checkpoint, subjEmail.Value) {
		t.Errorf("the checkpoint holds the subject's email")
	}
	if f.Dump([]string{"9001"}, false) != "9001|"+subjEmail.Value+"|||soft" {
		t.Fatalf("fake: %s", f.Dump([]string{"9001"}, false))
	}
	s.Checkpoint = p.Checkpoint
	rep2, err := c.Erase(context.Background(), s)
	if err != nil {
		t.Fatalf("second call: %v", err)
	}
	if n := f.Remaining([]string{"9001", "9002"}); n != 0 {
		t.Errorf("%d users not permanently deleted", n)
	}
	if total := rep.Total() + rep2.Total(); total != 2 {
		t.Errorf("reports count %d, want 2", total)
	}
}

// TestPrivateAddressRefused: without allow_hosts a vendor on a loopback
// address is never called.
func TestPrivateAddressRefused(t *testing.T) {
	t.Parallel()
	f := vendorfake.HubSpot(t)
	c, err := httprecipe.Open("hubspot", httprecipe.Options{Recipe: "hubspot", BaseURL: f.URL, Settings: map[string]string{"token": vendorfake.Token}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Erase(context.Background(), connector.Subject{RequestID: "r", Identities: []lethe.Identity{subjEmail}})
	if !connector.IsPermanent(err) || !strings.Contains(err.Error(), "allow_hosts") {
		t.Fatalf("Erase = %v, want a permanent refusal naming allow_hosts", err)
	}
	if n := f.TotalHits(); n != 0 {
		t.Errorf("%d calls reached the loopback vendor", n)
	}
}

// TestOptions: a target's options are checked against its recipe, every
// problem at once, secrets never quoted.
func TestOptions(t *testing.T) {
	t.Parallel()
	_, err := httprecipe.Open("seg", httprecipe.Options{
		Recipe:     "segment",
		Settings:   map[string]string{"tokn": "secret-value-0123456789"},
		Identities: []lethe.IdentityType{lethe.IdentityEmail},
		BatchSize:  6000,
		BaseURL:    "http://api.example.com",
	})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"settings.token is required", "settings.tokn is not a setting", `does not take "email"`, "batch_size must be 1..5000", "base_url must use https"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "secret-value") {
		t.Errorf("error quotes a setting's value")
	}
	if _, err := httprecipe.Open("x", httprecipe.Options{Recipe: "nosuch"}); err == nil || !strings.Contains(err.Error(), "segment") {
		t.Errorf("unknown recipe: %v, want the built-in names listed", err)
	}
	if _, err := httprecipe.Open("x", httprecipe.Options{Recipe: "./testdata/none.yaml"}); err == nil {
		t.Errorf("missing recipe file accepted")
	}
}
