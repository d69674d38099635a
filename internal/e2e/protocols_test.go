package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/connector/httprecipe/vendorfake"
)

// protocolCallback is one status callback a DRP agent or OpenDSR
// controller received.
type protocolCallback struct {
	body   []byte
	header http.Header
}

// callbackSink is an agent's or controller's callback endpoint.
func callbackSink(t *testing.T) (*httptest.Server, func() []protocolCallback) {
	var (
		mu  sync.Mutex
		got []protocolCallback
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, protocolCallback{body: b, header: r.Header.Clone()})
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []protocolCallback {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

// TestProtocolsEndToEnd: a request arriving over DRP 1.0 and one over
// OpenDSR 2.0 are each erased from a SQL target and from two vendors
// reached through HTTP recipes (Segment and Mixpanel, faked from their
// API documentation, both asynchronous); the agent and the controller get
// their status callbacks in their protocol's shape (the OpenDSR one
// checked with crypto/rsa against the certificate lethe publishes), and
// each request's receipt verifies and lists each vendor's job id as its
// evidence.
func TestProtocolsEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	shopDSN := filepath.Join(dir, "shop.db")
	shop := openDB(t, "sqlite", shopDSN)
	run(t, shop,
		`CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL)`,
		`CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users (id))`,
		`INSERT INTO users (id, email) VALUES (1, 'drp.subject@example.com'), (2, 'opendsr.subject@example.com'), (3, 'bystander@example.com')`,
		`INSERT INTO orders (id, user_id) VALUES (10, 1), (11, 2), (12, 3)`,
	)
	// The vendors know the subjects by the shop's user id, which resolve
	// links from the email the protocols carry.
	segment, mixpanel := vendorfake.Segment(t), vendorfake.Mixpanel(t)
	for _, f := range []*vendorfake.Fake{segment, mixpanel} {
		f.Add(vendorfake.Person{ID: "v1", UserID: "1", State: "active"}, vendorfake.Person{ID: "v2", UserID: "2", State: "active"},
			vendorfake.Person{ID: "v3", UserID: "3", State: "active"})
	}
	seed := sha256.Sum256([]byte("e2e drp agent"))
	agentKey := ed25519.NewKeyFromSeed(seed[:])
	agentPub := base64.StdEncoding.EncodeToString(agentKey.Public().(ed25519.PublicKey))

	db := filepath.Join(dir, "lethe.db")
	controller := createClient(t, db, "", "controller")
	agentSink, agentCalls := callbackSink(t)
	ctrlSink, ctrlCalls := callbackSink(t)
	srv := newServer(t, fmt.Sprintf(`db: %q
admin_token: ${LETHE_ADMIN_TOKEN}
workers: {backoff_base: 200ms, backoff_max: 2s, job_timeout: 20s}
callbacks: {allow_private_hosts: [127.0.0.1]}
drp:
  enabled: true
  business_id: CB_LETHE
  agents:
    - {id: AA_TEST, verify_key: %q}
opendsr:
  enabled: true
  domain: lethe.example.com
targets:
  - name: shop
    kind: sql
    driver: sqlite
    dsn: %q
    tables:
      - {name: users, identities: {email: email, user_id: id}, action: delete}
      - {name: orders, references: {column: user_id, table: users}, action: delete}
  - name: segment
    kind: http
    recipe: segment
    settings: {token: %q}
    base_url: %q
    allow_hosts: [127.0.0.1]
    poll_interval: 200ms
    poll_max: 1s
  - name: mixpanel
    kind: http
    recipe: mixpanel
    settings: {project_token: %q, oauth_token: %q}
    base_url: %q
    allow_hosts: [127.0.0.1]
    poll_interval: 200ms
    poll_max: 1s
`, db, agentPub, shopDSN, vendorfake.Token, segment.URL, vendorfake.ProjectToken, vendorfake.Token, mixpanel.URL+"/api/app"), "")
	srv.start()

	// DRP: pair-wise key setup, then a signed deletion request.
	sign := func(v map[string]any) []byte {
		msg, _ := json.Marshal(v)
		return []byte(base64.StdEncoding.EncodeToString(append(ed25519.Sign(agentKey, msg), msg...)))
	}
	now := time.Now().UTC()
	env := map[string]any{"agent-id": "AA_TEST", "business-id": "CB_LETHE", "drp.version": "1.0",
		"issued-at": now.Format(time.RFC3339), "expires-at": now.Add(5 * time.Minute).Format(time.RFC3339)}
	var setup struct {
		Token string `json:"token"`
	}
	mustCall(t, http.MethodPost, srv.url+"/v1/agent/AA_TEST", nil, sign(env), 200, &setup)
	exercise := map[string]any{"exercise": "deletion", "regime": "ccpa", "agent-request-id": "agent-req-1",
		"email": "drp.subject@example.com", "email_verified": true, "status_callback": agentSink.URL + "/status"}
	for k, v := range env {
		exercise[k] = v
	}
	var drpStatus struct {
		RequestID string `json:"request_id"`
		Status    string `json:"status"`
	}
	mustCall(t, http.MethodPost, srv.url+"/v1/data-rights-request", bearer(setup.Token), sign(exercise), 200, &drpStatus)
	if drpStatus.Status != "open" {
		t.Fatalf("DRP answer %+v", drpStatus)
	}

	// OpenDSR: an erasure request with a callback URL.
	subjectID := "6f0e2c8a-1d4b-4c3e-9a7f-2b5d8e1f0a93"
	odsrBody, _ := json.Marshal(map[string]any{
		"subject_request_id": subjectID, "subject_request_type": "erasure", "regulation": "gdpr",
		"submitted_time":       now.Format(time.RFC3339),
		"subject_identities":   []map[string]string{{"identity_type": "email", "identity_value": "opendsr.subject@example.com", "identity_format": "raw"}},
		"status_callback_urls": []string{ctrlSink.URL + "/opendsr/callbacks"},
	})
	basic := http.Header{}
	basic.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(controller.APIKey+":"+controller.Secret)))
	basic.Set("Content-Type", "application/json")
	mustCall(t, http.MethodPost, srv.url+"/v2/requests", basic, odsrBody, 201, nil)
	var odsrRequest string
	{
		var list struct {
			Data []struct{ ID, ExternalID string } `json:"data"`
		}
		mustCall(t, http.MethodGet, srv.url+"/v1/deletion-requests?limit=10", bearer(adminToken), nil, 200, &list)
		for _, r := range list.Data {
			if r.ID != drpStatus.RequestID {
				odsrRequest = r.ID
			}
		}
	}

	for _, id := range []string{drpStatus.RequestID, odsrRequest} {
		if v := waitRequest(t, srv, id, 25*time.Second); v.Status != "completed" {
			t.Fatalf("request %s is %s; tasks %+v", id, v.Status, v.Tasks)
		}
	}
	// The shop: both subjects gone, the bystander kept.
	for q, want := range map[string]int64{
		`SELECT count(*) FROM users WHERE id IN (1, 2)`:       0,
		`SELECT count(*) FROM orders WHERE user_id IN (1, 2)`: 0,
		`SELECT count(*) FROM users WHERE id = 3`:             1,
		`SELECT count(*) FROM orders WHERE user_id = 3`:       1,
	} {
		if n := count(t, shop, q); n != want {
			t.Errorf("shop: %s = %d, want %d", q, n, want)
		}
	}

	// The vendors: both subjects gone, the bystander kept.
	for name, f := range map[string]*vendorfake.Fake{"segment": segment, "mixpanel": mixpanel} {
		if n := f.Remaining([]string{"v1", "v2"}); n != 0 {
			t.Errorf("%s still holds %d of the subjects' records", name, n)
		}
		if n := f.Remaining([]string{"v3"}); n != 1 {
			t.Errorf("%s holds %d of the bystander's records, want 1", name, n)
		}
	}

	// Callbacks arrive after the status change; wait for the last one.
	waitFor(t, 20*time.Second, "status callbacks", func() (bool, string) {
		a, c := agentCalls(), ctrlCalls()
		return len(a) >= 2 && len(c) >= 2, fmt.Sprintf("%d agent and %d controller callbacks", len(a), len(c))
	})

	// DRP: the Exercise Status object, in_progress then fulfilled.
	var drpStates []string
	for _, c := range agentCalls() {
		var s struct {
			RequestID      string `json:"request_id"`
			AgentRequestID string `json:"agent_request_id"`
			Status         string `json:"status"`
			ExpectedBy     string `json:"expected_by"`
		}
		if err := json.Unmarshal(c.body, &s); err != nil || s.RequestID != drpStatus.RequestID || s.AgentRequestID != "agent-req-1" || s.ExpectedBy == "" {
			t.Errorf("DRP callback %s (%v)", c.body, err)
		}
		if bytes.Contains(c.body, []byte("@example.com")) {
			t.Errorf("DRP callback %s holds the identity", c.body)
		}
		drpStates = append(drpStates, s.Status)
	}
	if drpStates[len(drpStates)-1] != "fulfilled" || !slices.Contains(drpStates, "in_progress") {
		t.Errorf("DRP callbacks said %v, want in_progress then fulfilled", drpStates)
	}
	var polled struct {
		Status string `json:"status"`
	}
	mustCall(t, http.MethodGet, srv.url+"/v1/data-rights-request/"+drpStatus.RequestID, bearer(setup.Token), nil, 200, &polled)
	if polled.Status != "fulfilled" {
		t.Errorf("DRP status %q, want fulfilled", polled.Status)
	}
	// A revoke after fulfilment is refused.
	mustCall(t, http.MethodDelete, srv.url+"/v1/data-rights-request/"+drpStatus.RequestID, bearer(setup.Token), sign(map[string]any{"reason": "changed my mind"}), 409, nil)

	// OpenDSR: each callback signed over its exact bytes, checked with
	// crypto/rsa against the certificate discovery points to.
	var disc struct {
		ProcessorCertificate string `json:"processor_certificate"`
	}
	mustCall(t, http.MethodGet, srv.url+"/v2/discovery", nil, nil, 200, &disc)
	if disc.ProcessorCertificate != "https://lethe.example.com/v2/certificate.pem" {
		t.Fatalf("processor_certificate %q", disc.ProcessorCertificate)
	}
	rep, err := call(ctx, http.MethodGet, srv.url+"/v2/certificate.pem", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(rep.body)
	if blk == nil {
		t.Fatalf("certificate %q", rep.body)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub := cert.PublicKey.(*rsa.PublicKey)
	var odsrStates []string
	for _, c := range ctrlCalls() {
		sig, err := base64.StdEncoding.DecodeString(c.header.Get("X-OpenDSR-Signature"))
		sum := sha256.Sum256(c.body)
		if err != nil || rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig) != nil {
			t.Errorf("OpenDSR callback %s: signature does not verify", c.body)
		}
		if c.header.Get("X-OpenDSR-Processor-Domain") != "lethe.example.com" {
			t.Errorf("OpenDSR callback domain %q", c.header.Get("X-OpenDSR-Processor-Domain"))
		}
		var b struct {
			StatusCallbackURL string `json:"status_callback_url"`
			SubjectRequestID  string `json:"subject_request_id"`
			RequestStatus     string `json:"request_status"`
		}
		if err := json.Unmarshal(c.body, &b); err != nil || b.SubjectRequestID != subjectID || b.StatusCallbackURL != ctrlSink.URL+"/opendsr/callbacks" {
			t.Errorf("OpenDSR callback %s (%v)", c.body, err)
		}
		odsrStates = append(odsrStates, b.RequestStatus)
	}
	if odsrStates[len(odsrStates)-1] != "completed" || !slices.Contains(odsrStates, "in_progress") {
		t.Errorf("OpenDSR callbacks said %v, want in_progress then completed", odsrStates)
	}

	// Each request's receipt names the three targets, verifies, and
	// gives each vendor's job id as the evidence of its line.
	keys := mustCall(t, http.MethodGet, srv.url+"/v1/signing-keys", nil, nil, 200, nil)
	jobs := map[string][]string{"segment": segment.JobIDs(), "mixpanel": mixpanel.JobIDs()}
	for _, id := range []string{drpStatus.RequestID, odsrRequest} {
		rc := mustCall(t, http.MethodGet, srv.url+"/v1/deletion-requests/"+id+"/receipt", bearer(adminToken), nil, 200, nil)
		checkReceipt(t, rc.body, keys.body, id, map[string]map[string]string{"shop": nil, "segment": nil, "mixpanel": nil})
		var d struct {
			Receipt struct {
				Targets []struct {
					Target string `json:"target"`
					Items  []struct {
						Reference string `json:"reference"`
					} `json:"items"`
				} `json:"targets"`
			} `json:"receipt"`
		}
		if err := json.Unmarshal(rc.body, &d); err != nil {
			t.Fatal(err)
		}
		for _, tg := range d.Receipt.Targets {
			want, ok := jobs[tg.Target]
			if !ok {
				continue
			}
			if len(tg.Items) != 1 || tg.Items[0].Reference == "" || !slices.Contains(want, tg.Items[0].Reference) {
				t.Errorf("receipt of %s: %s items %+v, want one whose reference is one of the vendor's jobs %v", id, tg.Target, tg.Items, want)
			}
		}
	}
}
