package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lethe-privacy/lethe/internal/testdb"
)

// The subject of TestOneSubjectEveryKindOfTarget and a bystander who must
// keep everything.
const (
	subjectEmail   = "ada@example.com"
	subjectUserID  = "42"
	bystanderEmail = "bob@example.com"
	bystanderID    = "43"
	webhookSecret  = "e2e-webhook-secret-0123456789"
)

// Credentials lethe A uses at lethe B, given to `lethe clients create`.
const (
	procAPIKey       = "e2e-proc-api-key-0123456789"
	procSecret       = "e2e-proc-shared-secret-0123456789"
	procClientID     = "e2e-proc-client"
	procClientSecret = "e2e-proc-client-secret-0123456789"
)

// webhookCall is one erase call the test's service received.
type webhookCall struct {
	requestID      string
	idempotencyKey string
	identities     map[string][]string
	sigErr         string // "" when the signature checked out
}

// TestOneSubjectEveryKindOfTarget erases one subject from every kind of
// target a data map can name, through real processes: lethe A (on
// PostgreSQL) with a SQL target on PostgreSQL, a Redis target, a webhook
// target served by the test, and processor-s2s and processor-connect
// targets that forward to a second lethe B (on SQLite, with its own
// pipeline and no targets). One request through A's native API must end
// completed with everything gone, the webhook called once with a valid
// signature, B holding completed requests for exactly the identities each
// profile may send, and A's receipt naming all five targets and verifying.
func TestOneSubjectEveryKindOfTarget(t *testing.T) {
	t.Parallel()
	storeDSN, shopDSN := postgresDSN(t), postgresDSN(t)
	redisURL := testdb.RedisURL(t)
	prefix := testdb.RedisPrefix(t, redisURL)
	ctx := context.Background()

	// The SQL target: the subject's account and orders, and a bystander's.
	shop := openDB(t, "pgx", shopDSN)
	run(t, shop,
		`CREATE TABLE users (id BIGINT PRIMARY KEY, email TEXT NOT NULL)`,
		`CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL REFERENCES users (id), note TEXT)`,
		`INSERT INTO users (id, email) VALUES (42, 'ada@example.com'), (43, 'bob@example.com')`,
		`INSERT INTO orders (id, user_id, note) VALUES (1, 42, 'a'), (2, 42, 'b'), (3, 43, 'c')`,
	)

	// The Redis target: whole keys, a hash field, a set member and keys
	// found by SCAN, for the subject and the bystander alike.
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	for _, who := range []struct{ email, id string }{{subjectEmail, subjectUserID}, {bystanderEmail, bystanderID}} {
		p := rdb.Pipeline()
		p.Set(ctx, prefix+"session:"+who.id, "token", 0)
		p.HSet(ctx, prefix+"profile:"+who.email, "name", "someone", "user_id", who.id)
		p.HSet(ctx, prefix+"prefs:"+who.id, "email", who.email, "theme", "dark")
		p.SAdd(ctx, prefix+"newsletter", who.email)
		p.Set(ctx, prefix+"recent:"+who.email+":1", "x", 0)
		p.Set(ctx, prefix+"recent:"+who.email+":2", "y", 0)
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// The webhook target: a service that checks lethe's signature and
	// answers done with its counts.
	var (
		mu    sync.Mutex
		calls []webhookCall
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c := webhookCall{idempotencyKey: r.Header.Get("Idempotency-Key")}
		if err := checkWebhookSignature(webhookSecret, r.Header.Get("X-Lethe-Signature"), body, time.Now()); err != nil {
			c.sigErr = err.Error()
		}
		var in struct {
			RequestID  string              `json:"request_id"`
			Identities map[string][]string `json:"identities"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			c.sigErr += " (body: " + err.Error() + ")"
		}
		c.requestID, c.identities = in.RequestID, in.Identities
		mu.Lock()
		calls = append(calls, c)
		mu.Unlock()
		if r.URL.Path != "/erase" || c.sigErr != "" {
			http.Error(w, "refused", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"done","counts":{"accounts":1,"sessions":2}}`)
	}))
	t.Cleanup(hook.Close)

	// lethe B, the processor: SQLite, suppression on (so it can say which
	// identities it erased without showing them), no targets, and two
	// clients made before it starts: one A calls through s2s, one through
	// connect. Two clients, not one, so that B's requests show which
	// profile brought them (a client sees only its own).
	bDB := filepath.Join(t.TempDir(), "b.db")
	s2sClient := createClient(t, bDB, "", "lethe-a-s2s", "--api-key", procAPIKey, "--secret", procSecret)
	connClient := createClient(t, bDB, "", "lethe-a-connect", "--client-id", procClientID, "--client-secret", procClientSecret)
	b := newServer(t, fmt.Sprintf(`db: %q
admin_token: ${LETHE_ADMIN_TOKEN}
suppression: {enabled: true}
workers: {backoff_base: 200ms, backoff_max: 2s}
`, bDB), "")
	b.start()

	// lethe A, on PostgreSQL, with the five targets.
	aKey := randomKey(t)
	a := newServer(t, fmt.Sprintf(`db: %q
admin_token: ${LETHE_ADMIN_TOKEN}
workers: {backoff_base: 200ms, backoff_max: 2s, job_timeout: 20s}
targets:
  - name: shop
    kind: sql
    driver: postgres
    dsn: %q
    tables:
      - {name: users, identities: {email: email, user_id: id}, action: delete}
      - {name: orders, references: {column: user_id, table: users}, action: delete}
  - name: cache
    kind: redis
    url: %q
    key_prefix: %q
    keys: ["session:{user_id}", "profile:{email}"]
    hashes: [{key: "prefs:{user_id}", fields: [email]}]
    sets: [{key: newsletter, member: "{email}"}]
    scans: [{pattern: "recent:{email}:*"}]
  - name: billing-svc
    kind: webhook
    url: %q
    secret: %q
    identities: [email, user_id]
    timeout: 5s
    allow_hosts: [127.0.0.1]
  - name: proc-s2s
    kind: processor-s2s
    base_url: %q
    api_key: %q
    secret: %q
    identities: [user_id]
    poll_interval: 200ms
    poll_max: 1s
    allow_hosts: [127.0.0.1]
  - name: proc-connect
    kind: processor-connect
    base_url: %q
    client_id: %q
    client_secret: %q
    identities: [email, user_id]
    poll_interval: 200ms
    poll_max: 1s
    allow_hosts: [127.0.0.1]
`, storeDSN, shopDSN, redisURL, prefix, hook.URL+"/erase", webhookSecret,
		b.url, procAPIKey, procSecret, b.url, procClientID, procClientSecret), aKey)
	a.start()

	// One request through A's native API, with the email and the user id.
	var created requestView
	code, err := a.do(ctx, http.MethodPost, "/v1/deletion-requests", nil, map[string]any{
		"identities": []map[string]string{{"type": "email", "value": subjectEmail}, {"type": "user_id", "value": subjectUserID}},
	}, &created)
	if err != nil || code != http.StatusAccepted || created.ID == "" {
		t.Fatalf("submit to A: %d, %v, %+v", code, err, created)
	}
	id := created.ID
	done := waitRequest(t, a, id, 25*time.Second)
	if done.Status != "completed" {
		t.Fatalf("request %s, want completed; tasks: %+v", done.Status, done.Tasks)
	}

	// SQL: the subject's rows are gone, the bystander's stay.
	for _, c := range []struct {
		query string
		want  int64
	}{
		{`SELECT count(*) FROM users WHERE id = 42`, 0},
		{`SELECT count(*) FROM orders WHERE user_id = 42`, 0},
		{`SELECT count(*) FROM users WHERE id = 43`, 1},
		{`SELECT count(*) FROM orders WHERE user_id = 43`, 1},
	} {
		if n := count(t, shop, c.query); n != c.want {
			t.Errorf("shop: %s = %d, want %d", c.query, n, c.want)
		}
	}

	// Redis: the subject's keys, field and member are gone, the
	// bystander's stay.
	for _, who := range []struct {
		email, id string
		left      int64
	}{{subjectEmail, subjectUserID, 0}, {bystanderEmail, bystanderID, 1}} {
		for _, k := range []string{"session:" + who.id, "profile:" + who.email, "recent:" + who.email + ":1", "recent:" + who.email + ":2"} {
			if n := rdb.Exists(ctx, prefix+k).Val(); n != who.left {
				t.Errorf("redis key %s: exists %d, want %d", k, n, who.left)
			}
		}
		if ok := rdb.HExists(ctx, prefix+"prefs:"+who.id, "email").Val(); ok != (who.left == 1) {
			t.Errorf("redis hash prefs:%s has field email: %v, want %v", who.id, ok, who.left == 1)
		}
		if v := rdb.HGet(ctx, prefix+"prefs:"+who.id, "theme").Val(); v != "dark" {
			t.Errorf("redis hash prefs:%s field theme = %q: a field not in the map was touched", who.id, v)
		}
		if ok := rdb.SIsMember(ctx, prefix+"newsletter", who.email).Val(); ok != (who.left == 1) {
			t.Errorf("redis set newsletter has %s: %v, want %v", who.email, ok, who.left == 1)
		}
	}

	// The webhook: one erase call for this request, signed, carrying the
	// types the target may receive.
	mu.Lock()
	got := slices.Clone(calls)
	mu.Unlock()
	if len(got) != 1 {
		t.Errorf("webhook got %d calls, want 1: %+v", len(got), got)
	}
	for _, c := range got {
		if c.sigErr != "" {
			t.Errorf("webhook call with a bad signature: %s", c.sigErr)
		}
		if c.requestID != id || c.idempotencyKey != id {
			t.Errorf("webhook call for request %q with Idempotency-Key %q, want %s", c.requestID, c.idempotencyKey, id)
		}
		if fmt.Sprint(c.identities) != fmt.Sprint(map[string][]string{"email": {subjectEmail}, "user_id": {subjectUserID}}) {
			t.Errorf("webhook call identities %v, want the subject's email and user id", c.identities)
		}
	}

	// B, the processor: three completed requests, one through s2s (GDPR,
	// the user id) and two through connect (CCPA, the email and the user
	// id), each visible to the client that brought it.
	var all struct {
		Data []struct{ ID, Status, Regulation string } `json:"data"`
	}
	if code, err := b.do(ctx, http.MethodGet, "/v1/deletion-requests?limit=100", nil, nil, &all); err != nil || code != 200 {
		t.Fatalf("list B's requests: %d, %v", code, err)
	}
	regs := map[string]int{}
	for _, r := range all.Data {
		regs[r.Regulation+"/"+r.Status]++
	}
	if fmt.Sprint(regs) != fmt.Sprint(map[string]int{"ccpa/completed": 2, "gdpr/completed": 1}) {
		t.Errorf("B's requests by regulation/status: %v, want 2 ccpa (connect) and 1 gdpr (s2s), all completed", regs)
	}
	for _, c := range []struct {
		name           string
		client         createdClient
		id, secret     string
		requests       int
		emailForwarded bool
	}{
		{"s2s client", s2sClient, s2sClient.ClientID, s2sClient.ClientSecret, 1, false},
		{"connect client", connClient, procClientID, procClientSecret, 2, true},
	} {
		tok := connectToken(t, b.url, c.id, c.secret)
		var mine struct {
			Data []struct{ Status string } `json:"data"`
		}
		mustCall(t, http.MethodGet, b.url+"/v1/deletion-requests", bearer(tok), nil, 200, &mine)
		if len(mine.Data) != c.requests {
			t.Errorf("B: the %s has %d requests, want %d", c.name, len(mine.Data), c.requests)
		}
		// Which of the subject's identities B erased for this client (a
		// client sees only the suppressions its own requests added).
		var sup struct {
			Results []struct {
				Index      int  `json:"index"`
				Suppressed bool `json:"suppressed"`
			} `json:"results"`
		}
		body := `{"identities":[{"type":"user_id","value":"42"},{"type":"email","value":"ada@example.com"},{"type":"email","value":"bob@example.com"},{"type":"user_id","value":"43"}]}`
		mustCall(t, http.MethodPost, b.url+"/v1/suppressions/check", bearer(tok), []byte(body), 200, &sup)
		want := []bool{true, c.emailForwarded, false, false}
		for _, r := range sup.Results {
			if r.Index < len(want) && r.Suppressed != want[r.Index] {
				t.Errorf("B: for the %s, identity %d suppressed=%v, want %v (0: user id, 1: email, 2-3: bystander)", c.name, r.Index, r.Suppressed, want[r.Index])
			}
		}
		if len(sup.Results) != len(want) {
			t.Errorf("B: suppression check answered %d results, want %d", len(sup.Results), len(want))
		}
	}
	// The connect profile's own status call says the same.
	var status struct {
		Results []struct{ Identifier, Status string } `json:"results"`
	}
	mustCall(t, http.MethodPost, b.url+"/v2/compliance/customers/deletion/status", bearer(connectToken(t, b.url, procClientID, procClientSecret)),
		[]byte(`{"identifiers":["ada@example.com","42"]}`), 200, &status)
	for _, r := range status.Results {
		if r.Status != "completed" {
			t.Errorf("B's connect status for %s: %s, want completed", r.Identifier, r.Status)
		}
	}

	// A's receipt lists every target with its outcome, and verifies.
	rc := mustCall(t, http.MethodGet, a.url+"/v1/deletion-requests/"+id+"/receipt", bearer(adminToken), nil, 200, nil)
	keys := mustCall(t, http.MethodGet, a.url+"/v1/signing-keys", nil, nil, 200, nil)
	checkReceipt(t, rc.body, keys.body, id, map[string]map[string]string{
		"shop": {"users": "delete 1", "orders": "delete 2"},
		// Only what the service answered: the webhook's planning-time
		// placeholder ("service: forward 0", no plan_url) must not reach
		// the signed receipt.
		"billing-svc":  {"accounts": "delete 1", "sessions": "delete 2"},
		"proc-s2s":     nil, // forward; checked below
		"proc-connect": nil,
		"cache":        nil,
	})
	var doc struct {
		Receipt struct {
			Targets []struct {
				Target string `json:"target"`
				State  string `json:"state"`
				Items  []struct {
					Object, Action string
					Rows           int64
				} `json:"items"`
			} `json:"targets"`
		} `json:"receipt"`
	}
	if err := json.Unmarshal(rc.body, &doc); err != nil {
		t.Fatal(err)
	}
	for _, tg := range doc.Receipt.Targets {
		var rows int64
		for _, it := range tg.Items {
			rows += it.Rows
		}
		switch tg.Target {
		case "proc-s2s", "proc-connect":
			want := map[string]int64{"proc-s2s": 1, "proc-connect": 2}[tg.Target]
			if len(tg.Items) == 0 || tg.Items[0].Action != "forward" || rows != want {
				t.Errorf("receipt: %s items %+v, want forward of %d identities", tg.Target, tg.Items, want)
			}
		case "cache":
			// 2 keys + 1 field + 1 member + 2 scanned keys.
			if rows != 6 {
				t.Errorf("receipt: cache items %+v, want 6 entries erased in all", tg.Items)
			}
		}
	}

	// And lethe's own offline verifier agrees.
	dir := t.TempDir()
	rcPath, keysPath := filepath.Join(dir, "receipt.json"), filepath.Join(dir, "keys.json")
	if err := os.WriteFile(rcPath, rc.body, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keysPath, keys.body, 0o600); err != nil {
		t.Fatal(err)
	}
	out := cli(t, nil, "receipt", "verify", rcPath, "--keys-file", keysPath)
	if !strings.HasPrefix(string(out), "ok: receipt of request "+id) {
		t.Errorf("lethe receipt verify: %s", out)
	}
}

// checkWebhookSignature checks X-Lethe-Signature as connector/webhook's
// documentation describes it, independently of lethe's code:
// t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>, the
// timestamp within 5 minutes.
func checkWebhookSignature(secret, header string, body []byte, now time.Time) error {
	var ts, sig string
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return fmt.Errorf("malformed signature header %q", header)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("signature timestamp %s off", d)
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	if !hmac.Equal([]byte(sig), []byte(hex.EncodeToString(m.Sum(nil)))) {
		return fmt.Errorf("signature does not match")
	}
	return nil
}

// connectToken gets an OAuth token from a lethe's connect profile.
func connectToken(t *testing.T, base, id, secret string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"client_id": id, "client_secret": secret, "grant_type": "client_credentials"})
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	mustCall(t, http.MethodPost, base+"/v2/oauth/token", nil, body, 200, &tok)
	if tok.AccessToken == "" {
		t.Fatal("connect token: empty access_token")
	}
	return tok.AccessToken
}

// checkReceipt checks a receipt document against docs/receipts.md, in Go:
// the signature is Ed25519 over the exact bytes of the receipt member
// (lethe serves it canonical) by a key from GET /v1/signing-keys whose id
// is recomputed from the key. It also checks that the receipt is for id,
// completed, and lists exactly the targets of want, each done; for a
// target with a non-nil map, its items ("action rows" per object).
func checkReceipt(t *testing.T, doc, keySet []byte, id string, want map[string]map[string]string) {
	t.Helper()
	var d struct {
		Receipt   json.RawMessage `json:"receipt"`
		Signature struct {
			Alg   string `json:"alg"`
			KeyID string `json:"key_id"`
			Value string `json:"value"`
		} `json:"signature"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatalf("receipt: %v", err)
	}
	var ks struct {
		Keys []struct {
			PublicKey string `json:"public_key"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(keySet, &ks); err != nil {
		t.Fatalf("signing keys: %v", err)
	}
	sig, err := base64.StdEncoding.DecodeString(d.Signature.Value)
	if err != nil || d.Signature.Alg != "ed25519" {
		t.Fatalf("receipt signature %+v: %v", d.Signature, err)
	}
	verified := false
	for _, k := range ks.Keys {
		pub, err := base64.StdEncoding.DecodeString(k.PublicKey)
		if err != nil || len(pub) != ed25519.PublicKeySize {
			t.Fatalf("signing key %q: not 32 bytes of base64", k.PublicKey)
		}
		sum := sha256.Sum256(pub)
		if hex.EncodeToString(sum[:16]) != d.Signature.KeyID {
			continue
		}
		verified = ed25519.Verify(ed25519.PublicKey(pub), d.Receipt, sig)
	}
	if !verified {
		t.Errorf("receipt signature does not verify against GET /v1/signing-keys (key_id %s)", d.Signature.KeyID)
	}

	var r struct {
		RequestID string `json:"request_id"`
		Status    string `json:"status"`
		Version   string `json:"version"`
		Targets   []struct {
			Target string `json:"target"`
			State  string `json:"state"`
			Items  []struct {
				Object string `json:"object"`
				Action string `json:"action"`
				Rows   int64  `json:"rows"`
			} `json:"items"`
		} `json:"targets"`
	}
	if err := json.Unmarshal(d.Receipt, &r); err != nil {
		t.Fatalf("receipt member: %v", err)
	}
	if r.RequestID != id || r.Status != "completed" || r.Version != "lethe.receipt.v1" {
		t.Errorf("receipt of %s, %s, %s; want %s, completed, lethe.receipt.v1", r.RequestID, r.Status, r.Version, id)
	}
	var names []string
	for _, tg := range r.Targets {
		names = append(names, tg.Target)
		if tg.State != "done" {
			t.Errorf("receipt: target %s is %s, want done", tg.Target, tg.State)
		}
		w, ok := want[tg.Target]
		if !ok || w == nil {
			continue
		}
		got := map[string]string{}
		for _, it := range tg.Items {
			got[it.Object] = fmt.Sprintf("%s %d", it.Action, it.Rows)
		}
		if fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("receipt: target %s items %v, want %v", tg.Target, got, w)
		}
	}
	var wantNames []string
	for n := range want {
		wantNames = append(wantNames, n)
	}
	slices.Sort(names)
	slices.Sort(wantNames)
	if !slices.Equal(names, wantNames) {
		t.Errorf("receipt lists targets %v, want %v", names, wantNames)
	}
	t.Logf("receipt: %s", d.Receipt)
}
