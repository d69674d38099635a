package drp_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/httpapi"
	"github.com/lethe-privacy/lethe/internal/pipeline"
	"github.com/lethe-privacy/lethe/internal/profile/drp"
	"github.com/lethe-privacy/lethe/internal/profile/profiletest"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
	"github.com/lethe-privacy/lethe/internal/store"
)

const (
	business = "cb-id"
	agentID  = "aa-id"
)

// agentKey is the test agent's Ed25519 key, from a fixed seed so that
// signed bodies are reproducible.
func agentKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("drp test agent " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

// sign is an agent's libsodium crypto_sign, written from section 3.07
// with crypto/ed25519 directly rather than through drp.Seal: signature
// first, then the message, base64 with padding.
func sign(key ed25519.PrivateKey, msg []byte) []byte {
	sig := ed25519.Sign(key, msg)
	return []byte(base64.StdEncoding.EncodeToString(append(sig, msg...)))
}

type fixture struct {
	*profiletest.Env
	h       *drp.Handler
	handler http.Handler
}

func newFixture(t *testing.T, b profiletest.Backend, rules ratelimit.Rules) *fixture {
	t.Helper()
	e := profiletest.OpenEnv(t, b)
	h, err := drp.New(drp.Options{
		Intake: e.Intake, Clients: e.Clients, Store: e.Store, Limiter: e.Limiter,
		BusinessID: business, Rules: rules, Throttle: e.Throttle, Now: e.Clock.Now, Logger: e.Logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, id := range []string{agentID, "other-agent"} {
		if _, err := e.Clients.RegisterAgent(ctx, id, agentKey(id).Public().(ed25519.PublicKey)); err != nil {
			t.Fatal(err)
		}
	}
	return &fixture{Env: e, h: h, handler: profiletest.Serve(t, e, profiletest.ServeOptions{Profiles: []httpapi.Profile{h}})}
}

func (f *fixture) do(t *testing.T, method, path, token string, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	r.Header.Set("Content-Type", "text/plain")
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	r.RemoteAddr = "192.0.2.1:5000"
	w := httptest.NewRecorder()
	f.handler.ServeHTTP(w, r)
	return w
}

func (f *fixture) envelope(agent string) map[string]any {
	now := f.Clock.Now().UTC()
	return map[string]any{
		"agent-id": agent, "business-id": business,
		"issued-at":   now.Format(time.RFC3339),
		"expires-at":  now.Add(10 * time.Minute).Format(time.RFC3339),
		"drp.version": "1.0",
	}
}

// token runs the pair-wise key setup (section 2.05) for agent.
func (f *fixture) token(t *testing.T, agent string) string {
	t.Helper()
	msg, _ := json.Marshal(f.envelope(agent))
	w := f.do(t, http.MethodPost, drp.PathAgent+"/"+agent, "", sign(agentKey(agent), msg))
	if w.Code != http.StatusOK {
		t.Fatalf("setup: %d %s", w.Code, w.Body)
	}
	var got drp.SetupResponse
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got.AgentID != agent || got.Token == "" {
		t.Fatalf("setup answer %s (%v)", w.Body, err)
	}
	return got.Token
}

func (f *fixture) exercise(agent, email string, extra map[string]any) []byte {
	m := f.envelope(agent)
	m["exercise"] = "deletion"
	m["regime"] = "ccpa"
	m["email"] = email
	m["email_verified"] = true
	for k, v := range extra {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, _ := json.Marshal(m)
	return b
}

var errorShape = regexp.MustCompile(`^\{"code":"(\d{3})","message":"((?:[^"\\]|\\.)*)"(,"fatal":true)?\}$`)

// drpMessage returns the message of a body in DRP's error shape (section
// 3.06) and fails t when body is not exactly that.
func drpMessage(t *testing.T, body []byte) string {
	t.Helper()
	m := errorShape.FindSubmatch(body)
	if m == nil {
		t.Fatalf("body %s is not in DRP's error shape", body)
	}
	var msg string
	if err := json.Unmarshal([]byte(`"`+string(m[2])+`"`), &msg); err != nil {
		t.Fatal(err)
	}
	return msg
}

// wantError checks a DRP error answer: status, code equal to it, message.
func wantError(t *testing.T, w *httptest.ResponseRecorder, status int, msgPart string, fatal bool) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d %s, want %d", w.Code, w.Body, status)
	}
	m := errorShape.FindSubmatch(w.Body.Bytes())
	if m == nil || string(m[1]) != fmt.Sprint(status) || (len(m[3]) > 0) != fatal {
		t.Fatalf("body %s: want code %q, fatal %v", w.Body, fmt.Sprint(status), fatal)
	}
	if !strings.Contains(drpMessage(t, w.Body.Bytes()), msgPart) {
		t.Fatalf("message of %s does not say %q", w.Body, msgPart)
	}
}

func TestConformance(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		const limit = 5
		f := newFixture(t, b, ratelimit.Rules{Default: ratelimit.Rule{Limit: limit, Window: 10 * time.Minute, Block: 10 * time.Minute}})
		tok := f.token(t, agentID)
		post := func(body []byte) *http.Request {
			r := httptest.NewRequest(http.MethodPost, drp.PathRequests, bytes.NewReader(body))
			r.Header.Set("Content-Type", "text/plain")
			r.Header.Set("Authorization", "Bearer "+tok)
			return r
		}
		email := func(n int) string { return fmt.Sprintf("user-%d@example.com", n) }
		profiletest.Conformance(t, profiletest.Surface{
			Env:     f.Env,
			Handler: f.handler,
			Valid: func(t *testing.T, n int) *http.Request {
				return post(sign(agentKey(agentID), f.exercise(agentID, email(n), nil)))
			},
			BadAuth: func(t *testing.T, n int) *http.Request {
				return post(sign(agentKey("intruder"), f.exercise(agentID, email(n), nil)))
			},
			WithBody: func(t *testing.T, body []byte) *http.Request {
				return post(sign(agentKey(agentID), body))
			},
			AuthStatus:    http.StatusForbidden,
			InvalidStatus: http.StatusBadRequest,
			Limit:         limit,
			MaxBodyBytes:  drp.DefaultMaxBodyBytes,
			UnknownPaths:  []string{drp.PathRequests + "/x/y", drp.PathAgent, drp.PathAgent + "/a/b"},
			Message:       drpMessage,
		})
	})
}

// specExample returns the first code block after heading in the spec,
// kept in testdata as published.
func specSection(t *testing.T, heading string) string {
	t.Helper()
	doc, err := os.ReadFile("testdata/examples.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), heading)
	if !ok {
		t.Fatalf("no %q in testdata/examples.md", heading)
	}
	_, rest, _ = strings.Cut(rest, "```\n")
	block, _, _ := strings.Cut(rest, "```")
	return block
}

func compact(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatalf("compact %s: %v", s, err)
	}
	return b.String()
}

// keysOf returns the member names of a JSON object in document order.
func keysOf(t *testing.T, doc []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(doc))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("%s is not an object", doc)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// TestSpecExamples checks the answers against the examples of DRP 1.0,
// kept verbatim in testdata/examples.md.
func TestSpecExamples(t *testing.T) {
	f := newFixture(t, profiletest.Backends()[0], ratelimit.Rules{})
	tok := f.token(t, agentID)

	t.Run("error example: a right not offered", func(t *testing.T) {
		// Section 3.06's example is the answer to a right the business
		// does not offer, byte for byte once its white space is removed.
		want := compact(t, specSection(t, "### 3.06 Error States"))
		for _, right := range []string{"sale:opt-out", "sale:opt-in", "access", "access:categories", "access:specific", "no-such-right"} {
			before := profiletest.CountRequests(t, f.Store)
			w := f.do(t, http.MethodPost, drp.PathRequests, tok, sign(agentKey(agentID), f.exercise(agentID, "ana@example.com", map[string]any{"exercise": right})))
			if w.Code != http.StatusBadRequest || w.Body.String() != want {
				t.Fatalf("%s: %d %s, want 400 %s", right, w.Code, w.Body, want)
			}
			if profiletest.CountRequests(t, f.Store) != before {
				t.Fatalf("%s: a refused right stored a request", right)
			}
		}
	})

	t.Run("exercise example", func(t *testing.T) {
		// Section 2.01's example with its placeholders filled, the right
		// made deletion and identity claims of section 3.04 added.
		m := f.envelope("aa-id")
		m["agent-request-id"] = "foo"
		m["exercise"] = "deletion"
		m["regime"] = "ccpa"
		m["relationships"] = []string{"customer", "marketing"}
		m["status_callback"] = "https://dsr-agent.example.com/update_status"
		m["name"] = "Ana Example"
		m["email"] = "ana.example@example.com"
		m["email_verified"] = true
		m["phone_number"] = "+14155550100"
		m["phone_number_verified"] = false
		m["address"] = map[string]any{"country": "US"}
		m["power_of_attorney"] = "poa-ref"
		msg, _ := json.Marshal(m)
		w := f.do(t, http.MethodPost, drp.PathRequests, tok, sign(agentKey(agentID), msg))
		if w.Code != http.StatusOK {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		var st drp.ExerciseStatus
		if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
			t.Fatal(err)
		}
		req, err := f.Store.GetRequest(context.Background(), st.RequestID, store.Scope{All: true})
		if err != nil {
			t.Fatal(err)
		}
		now := f.Clock.Now().UTC()
		want := fmt.Sprintf(`{"request_id":%q,"received_at":%q,"expected_by":%q,"agent_request_id":"foo","status":"open"}`,
			req.ID, now.Format(time.RFC3339), now.Add(lethe.DefaultDeadlines[lethe.CCPA]).Format(time.RFC3339))
		if w.Body.String() != want {
			t.Fatalf("answer\n%s\nwant\n%s", w.Body, want)
		}
		if req.Regulation != lethe.CCPA || req.ExternalID != "foo" || req.CallbackFormat != drp.FormatName || req.CallbackURL != "https://dsr-agent.example.com/update_status" {
			t.Fatalf("stored %+v", req)
		}
		ids, err := f.Store.RequestIdentities(context.Background(), req.ID)
		if err != nil || len(ids) != 2 || ids[0] != (lethe.Identity{Type: lethe.IdentityEmail, Value: "ana.example@example.com"}) || ids[1].Type != lethe.IdentityPhone {
			t.Fatalf("identities %v (%v)", ids, err)
		}
		// The status object keeps section 3.03's member order.
		order := keysOf(t, []byte(specSection(t, "### 3.03 Schema: Status of a Data Subject Exercise Request")))
		got := keysOf(t, w.Body.Bytes())
		i := 0
		for _, k := range order {
			if i < len(got) && got[i] == k {
				i++
			}
		}
		if i != len(got) {
			t.Fatalf("members %v are not in the order of %v", got, order)
		}
	})

	t.Run("setup answer", func(t *testing.T) {
		example := specSection(t, "#### 2.05.1 `POST /v1/agent/{agent-id}` Response")
		msg, _ := json.Marshal(f.envelope(agentID))
		w := f.do(t, http.MethodPost, drp.PathAgent+"/"+agentID, "", sign(agentKey(agentID), msg))
		if w.Code != http.StatusOK {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		if got, want := keysOf(t, w.Body.Bytes()), keysOf(t, []byte(example)); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("members %v, want %v", got, want)
		}
		// The new token replaces the old one.
		newTok := drpToken(t, w.Body.Bytes())
		if w := f.do(t, http.MethodGet, drp.PathAgent+"/"+agentID, tok, nil); w.Code != http.StatusForbidden {
			t.Fatalf("replaced token: %d %s", w.Code, w.Body)
		}
		tok = newTok
	})

	t.Run("agent information", func(t *testing.T) {
		want := compact(t, specSection(t, "#### 2.06.1 `GET /v1/agent/{agent-id}` Response"))
		w := f.do(t, http.MethodGet, drp.PathAgent+"/"+agentID, tok, nil)
		if w.Code != http.StatusOK || w.Body.String() != want {
			t.Fatalf("%d %s, want 200 %s", w.Code, w.Body, want)
		}
		wantError(t, f.do(t, http.MethodGet, drp.PathAgent+"/other-agent", tok, nil), http.StatusForbidden, "not this agent", false)
	})
}

func drpToken(t *testing.T, body []byte) string {
	t.Helper()
	var s drp.SetupResponse
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	return s.Token
}

func TestFlows(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		f := newFixture(t, b, ratelimit.Rules{})
		ctx := context.Background()
		tok := f.token(t, agentID)
		otherTok := f.token(t, "other-agent")
		key := agentKey(agentID)
		submit := func(t *testing.T, email string, extra map[string]any) drp.ExerciseStatus {
			t.Helper()
			w := f.do(t, http.MethodPost, drp.PathRequests, tok, sign(key, f.exercise(agentID, email, extra)))
			if w.Code != http.StatusOK {
				t.Fatalf("submit: %d %s", w.Code, w.Body)
			}
			var st drp.ExerciseStatus
			if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
				t.Fatal(err)
			}
			return st
		}
		get := func(t *testing.T, id string) drp.ExerciseStatus {
			t.Helper()
			w := f.do(t, http.MethodGet, drp.PathRequests+"/"+id, tok, nil)
			if w.Code != http.StatusOK {
				t.Fatalf("status: %d %s", w.Code, w.Body)
			}
			var st drp.ExerciseStatus
			if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
				t.Fatal(err)
			}
			return st
		}
		move := func(t *testing.T, id string, to lethe.Status, outcome lethe.Outcome) {
			t.Helper()
			ok, err := f.Store.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: id, To: to, ToStage: lethe.StageDone, At: f.Clock.Now(), Outcome: outcome})
			if err != nil || !ok {
				t.Fatalf("move to %s: %v %v", to, ok, err)
			}
		}
		revokeBody := sign(key, []byte(`{"reason":"I don't want my account deleted"}`))

		t.Run("exercise, status, revoke", func(t *testing.T) {
			st := submit(t, "rev@example.com", map[string]any{"agent-request-id": "r-1"})
			if st.Status != drp.StatusOpen || st.AgentRequestID != "r-1" || st.ExpectedBy == "" {
				t.Fatalf("submitted: %+v", st)
			}
			// The same agent-request-id again is the same request.
			if again := submit(t, "rev@example.com", map[string]any{"agent-request-id": "r-1"}); again.RequestID != st.RequestID {
				t.Fatalf("a retried submission made request %s, first was %s", again.RequestID, st.RequestID)
			}
			if got := get(t, st.RequestID); got != st {
				t.Fatalf("status %+v, want %+v", got, st)
			}
			// Another agent may not read or revoke it.
			wantError(t, f.do(t, http.MethodGet, drp.PathRequests+"/"+st.RequestID, otherTok, nil), http.StatusForbidden, "another agent", false)
			wantError(t, f.do(t, http.MethodDelete, drp.PathRequests+"/"+st.RequestID, otherTok, sign(agentKey("other-agent"), []byte(`{}`))), http.StatusForbidden, "another agent", false)
			// A revoke naming another agent or business changes nothing.
			wantError(t, f.do(t, http.MethodDelete, drp.PathRequests+"/"+st.RequestID, tok, sign(key, []byte(`{"agent-id":"other-agent"}`))), http.StatusForbidden, "agent-id does not match", false)
			wantError(t, f.do(t, http.MethodDelete, drp.PathRequests+"/"+st.RequestID, tok, sign(key, []byte(`{"business-id":"cb-other"}`))), http.StatusForbidden, "business-id", false)
			// A revoke signed by the wrong key changes nothing.
			wantError(t, f.do(t, http.MethodDelete, drp.PathRequests+"/"+st.RequestID, tok, sign(agentKey("other-agent"), []byte(`{}`))), http.StatusForbidden, "invalid token or signature", false)
			w := f.do(t, http.MethodDelete, drp.PathRequests+"/"+st.RequestID, tok, revokeBody)
			if w.Code != http.StatusOK {
				t.Fatalf("revoke: %d %s", w.Code, w.Body)
			}
			var rev drp.ExerciseStatus
			if err := json.Unmarshal(w.Body.Bytes(), &rev); err != nil || rev.Status != drp.StatusRevoked || rev.ExpiresAt == "" {
				t.Fatalf("revoke answer %s", w.Body)
			}
			if got := get(t, st.RequestID); got.Status != drp.StatusRevoked {
				t.Fatalf("after revoke: %+v", got)
			}
			// The reason, the user's own words, is kept nowhere.
			evs, err := f.Store.ListAudit(ctx, st.RequestID)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range evs {
				if strings.Contains(fmt.Sprint(e.Details), "deleted") {
					t.Fatalf("audit event %s keeps the revoke reason", e.Type)
				}
			}
		})

		t.Run("revoke after fulfilment", func(t *testing.T) {
			st := submit(t, "done@example.com", nil)
			move(t, st.RequestID, lethe.StatusCompleted, lethe.OutcomeErased)
			wantError(t, f.do(t, http.MethodDelete, drp.PathRequests+"/"+st.RequestID, tok, revokeBody), http.StatusConflict, "the request is fulfilled and can no longer be revoked", false)
			if got := get(t, st.RequestID); got.Status != drp.StatusFulfilled || got.ExpiresAt == "" {
				t.Fatalf("after a refused revoke: %+v", got)
			}
			// Past its record period a final request is expired.
			f.Clock.Advance(drp.DefaultKeep)
			if got := get(t, st.RequestID); got.Status != drp.StatusExpired {
				t.Fatalf("after %s: %+v", drp.DefaultKeep, got)
			}
		})

		t.Run("revoke while erasing", func(t *testing.T) {
			st := submit(t, "busy@example.com", nil)
			if ok, err := f.Store.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: st.RequestID, To: lethe.StatusRunning, ToStage: lethe.StageErase, At: f.Clock.Now()}); err != nil || !ok {
				t.Fatal(ok, err)
			}
			wantError(t, f.do(t, http.MethodDelete, drp.PathRequests+"/"+st.RequestID, tok, revokeBody), http.StatusConflict, "the request is in_progress", false)
		})

		t.Run("no match is denied", func(t *testing.T) {
			st := submit(t, "nobody@example.com", nil)
			move(t, st.RequestID, lethe.StatusCompleted, lethe.OutcomeNoMatch)
			if got := get(t, st.RequestID); got.Status != drp.StatusDenied || got.Reason != "no_match" || got.ProcessingDetails == "" {
				t.Fatalf("no match: %+v", got)
			}
		})

		t.Run("extension", func(t *testing.T) {
			st := submit(t, "late@example.com", nil)
			req, err := f.Store.GetRequest(ctx, st.RequestID, store.Scope{All: true})
			if err != nil {
				t.Fatal(err)
			}
			due := req.DueAt.Add(45 * 24 * time.Hour)
			if ok, err := f.Store.ExtendRequest(ctx, store.Extension{RequestID: req.ID, PreviousDue: req.DueAt, Due: due, Reason: "many systems to search", Actor: lethe.ActorOperator, ActorID: "ana", At: f.Clock.Now()}); err != nil || !ok {
				t.Fatal(ok, err)
			}
			got := get(t, st.RequestID)
			if got.ExpectedBy != due.UTC().Format(time.RFC3339) || got.ProcessingDetails != "the business extended the deadline: many systems to search" {
				t.Fatalf("extended: %+v", got)
			}
			// The extension's callback says the same.
			req.DueAt = due
			body, err := f.h.Format().Render(pipeline.StatusChange{Request: req, OccurredAt: f.Clock.Now(), Extension: &pipeline.ExtensionChange{PreviousDueAt: due, Reason: "many systems to search"}})
			if err != nil || !strings.Contains(string(body), `"expected_by":"`+got.ExpectedBy+`"`) || !strings.Contains(string(body), `"processing_details":"the business extended the deadline: many systems to search"`) {
				t.Fatalf("extension callback %s (%v)", body, err)
			}
		})

		t.Run("unknown request", func(t *testing.T) {
			wantError(t, f.do(t, http.MethodGet, drp.PathRequests+"/0190f6b0-0000-7000-8000-000000000000", tok, nil), http.StatusNotFound, "Not found", false)
		})
	})
}

// TestRefusals: what section 3.07 says must be refused is refused, in
// DRP's shape, and stores nothing.
func TestRefusals(t *testing.T) {
	f := newFixture(t, profiletest.Backends()[0], ratelimit.Rules{})
	tok := f.token(t, agentID)
	key := agentKey(agentID)
	now := f.Clock.Now().UTC()
	good := f.exercise(agentID, "x@example.com", nil)
	flipped := sign(key, good)
	raw, _ := base64.StdEncoding.DecodeString(string(flipped))
	raw[3] ^= 1
	badSig := []byte(base64.StdEncoding.EncodeToString(raw))
	altered := append([]byte(nil), raw...)
	altered[3] ^= 1
	altered[len(altered)-3] ^= 1 // a changed message under the right signature
	for _, c := range []struct {
		name   string
		token  string
		body   []byte
		status int
		msg    string
		fatal  bool
	}{
		{"no token", "", flipped, 403, "invalid token or signature", false},
		{"unknown token", "not-a-token", flipped, 403, "invalid token or signature", false},
		{"bad signature", tok, badSig, 403, "invalid token or signature", false},
		{"altered message", tok, []byte(base64.StdEncoding.EncodeToString(altered)), 403, "invalid token or signature", false},
		{"another agent's key", tok, sign(agentKey("other-agent"), good), 403, "invalid token or signature", false},
		{"too short", tok, []byte(base64.StdEncoding.EncodeToString(make([]byte, 63))), 403, "invalid token or signature", false},
		{"not base64", tok, []byte("{\"agent-id\":\"aa-id\"}"), 400, "not a base64", false},
		{"signed not JSON", tok, sign(key, []byte("hello")), 400, "not valid JSON", false},
		{"agent-id of another agent", tok, sign(key, f.exercise("other-agent", "x@example.com", nil)), 403, "agent-id does not match", false},
		{"other business", tok, sign(key, f.exercise(agentID, "x@example.com", map[string]any{"business-id": "cb-other"})), 403, "business-id", false},
		{"expired", tok, sign(key, f.exercise(agentID, "x@example.com", map[string]any{"expires-at": now.Add(-time.Second).Format(time.RFC3339)})), 400, "expired", true},
		{"issued in the future", tok, sign(key, f.exercise(agentID, "x@example.com", map[string]any{"issued-at": now.Add(time.Hour).Format(time.RFC3339)})), 400, "issued-at is in the future", false},
		{"bad timestamp", tok, sign(key, f.exercise(agentID, "x@example.com", map[string]any{"issued-at": "yesterday"})), 400, "ISO 8601", false},
		{"old version", tok, sign(key, f.exercise(agentID, "x@example.com", map[string]any{"drp.version": "0.9"})), 400, "drp.version", false},
		{"missing exercise", tok, sign(key, f.exercise(agentID, "x@example.com", map[string]any{"exercise": nil})), 400, "exercise is missing", false},
		{"no identity", tok, sign(key, f.exercise(agentID, "x@example.com", map[string]any{"email": nil})), 400, "neither email nor phone_number", false},
		{"bad email", tok, sign(key, f.exercise(agentID, "not-an-email", nil)), 400, "email is not a valid email", false},
		{"other regime", tok, sign(key, f.exercise(agentID, "x@example.com", map[string]any{"regime": "gdpr"})), 400, "regime is not supported", false},
		{"bad callback", tok, sign(key, f.exercise(agentID, "x@example.com", map[string]any{"status_callback": "ftp://agent.example.com/cb"})), 400, "callback_url", false},
		{"callback naming the subject", tok, sign(key, f.exercise(agentID, "x@example.com", map[string]any{"status_callback": "https://agent.example.com/cb?u=x@example.com"})), 400, "callback_url must not contain", false},
		{"relationships not strings", tok, sign(key, f.exercise(agentID, "x@example.com", map[string]any{"relationships": []int{1}})), 400, "relationships", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := profiletest.CountRequests(t, f.Store)
			wantError(t, f.do(t, http.MethodPost, drp.PathRequests, c.token, c.body), c.status, c.msg, c.fatal)
			if profiletest.CountRequests(t, f.Store) != before {
				t.Fatal("a refused request was stored")
			}
		})
	}

	t.Run("setup refusals have no body", func(t *testing.T) {
		env := func(agent string, change map[string]any) []byte {
			m := f.envelope(agent)
			for k, v := range change {
				m[k] = v
			}
			b, _ := json.Marshal(m)
			return b
		}
		for name, c := range map[string]struct {
			path string
			body []byte
		}{
			"unknown agent":        {"/nobody", sign(agentKey("nobody"), env("nobody", nil))},
			"wrong key":            {"/" + agentID, sign(agentKey("other-agent"), env(agentID, nil))},
			"agent-id not the URL": {"/" + agentID, sign(key, env("other-agent", nil))},
			"other business":       {"/" + agentID, sign(key, env(agentID, map[string]any{"business-id": "x"}))},
			"expired":              {"/" + agentID, sign(key, env(agentID, map[string]any{"expires-at": now.Add(-time.Minute).Format(time.RFC3339)}))},
		} {
			w := f.do(t, http.MethodPost, drp.PathAgent+c.path, "", c.body)
			if w.Code != http.StatusForbidden || w.Body.Len() != 0 {
				t.Errorf("%s: %d %q, want 403 with no body", name, w.Code, w.Body)
			}
		}
	})
}

// TestCallbackFormat: a status callback is the Exercise Status object of
// the request as it stands, holding no identity.
func TestCallbackFormat(t *testing.T) {
	f := newFixture(t, profiletest.Backends()[0], ratelimit.Rules{})
	tok := f.token(t, agentID)
	w := f.do(t, http.MethodPost, drp.PathRequests, tok, sign(agentKey(agentID), f.exercise(agentID, "cb@example.com", map[string]any{"agent-request-id": "cb-1", "status_callback": "https://agent.example.com/status"})))
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var st drp.ExerciseStatus
	_ = json.Unmarshal(w.Body.Bytes(), &st)
	req, err := f.Store.GetRequest(context.Background(), st.RequestID, store.Scope{All: true})
	if err != nil {
		t.Fatal(err)
	}
	req.Status, req.Outcome, req.CompletedAt = lethe.StatusCompleted, lethe.OutcomeErased, f.Clock.Now()
	body, err := f.h.Format().Render(pipeline.StatusChange{Request: req, OccurredAt: f.Clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`{"request_id":%q,"received_at":%q,"expected_by":%q,"agent_request_id":"cb-1","status":"fulfilled","expires_at":%q}`,
		req.ID, st.ReceivedAt, st.ExpectedBy, req.CompletedAt.Add(drp.DefaultKeep).UTC().Format(time.RFC3339))
	if string(body) != want {
		t.Fatalf("callback body\n%s\nwant\n%s", body, want)
	}
	if bytes.Contains(body, []byte("cb@example.com")) || bytes.Contains(body, []byte("agent.example.com")) {
		t.Fatal("the callback body holds the identity or the URL")
	}
}

// TestStates: every lethe state maps to the DRP state the table says,
// operator control's held and denied included (with the reason code the
// operator chose).
func TestStates(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		status  lethe.Status
		outcome lethe.Outcome
		want    string
		reason  string
	}{
		{lethe.StatusReceived, "", drp.StatusOpen, ""},
		{lethe.StatusRunning, "", drp.StatusInProgress, ""},
		{lethe.Status("held"), "", drp.StatusInProgress, ""},
		{lethe.StatusFailed, "", drp.StatusInProgress, ""},
		{lethe.StatusCompleted, lethe.OutcomeErased, drp.StatusFulfilled, ""},
		{lethe.StatusCompleted, lethe.OutcomeNoMatch, drp.StatusDenied, "no_match"},
		{lethe.StatusCanceled, "", drp.StatusRevoked, ""},
		{lethe.Status("denied"), "suspected_fraud", drp.StatusDenied, "suspected_fraud"},
		{lethe.Status("denied"), "too_many_requests", drp.StatusDenied, "too_many_requests"},
		{lethe.Status("denied"), "", drp.StatusDenied, "other"},
		{lethe.Status("some_future_state"), "", drp.StatusInProgress, ""},
	} {
		r := &lethe.Request{ID: "r", Status: c.status, Outcome: c.outcome, ReceivedAt: now, DueAt: now.Add(time.Hour)}
		if c.status.Terminal() || c.status == "denied" {
			r.CompletedAt = now
		}
		got := drp.StatusOf(r, now, drp.DefaultKeep, "")
		if got.Status != c.want || got.Reason != c.reason {
			t.Errorf("%s/%s: %s/%s, want %s/%s", c.status, c.outcome, got.Status, got.Reason, c.want, c.reason)
		}
		if final := got.ExpiresAt != ""; final != (c.want != drp.StatusOpen && c.want != drp.StatusInProgress) {
			t.Errorf("%s: expires_at %q", c.status, got.ExpiresAt)
		}
	}
}
