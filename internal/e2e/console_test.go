package e2e

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath finds Debian's chromium (LETHE_TEST_CHROMIUM overrides).
// Without it the browser test is skipped, unless the run requires every
// service (CI), where .ci/run installs it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("LETHE_TEST_CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("LETHE_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("chromium not found at %s (LETHE_TEST_CHROMIUM); install Debian's chromium", p)
		}
		t.Skipf("chromium not found at %s: install Debian's chromium (apt-get install chromium) or set LETHE_TEST_CHROMIUM", p)
	}
	return p
}

// tab is one headless Chromium tab driven by the test.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string
	shot string // where screenshots go; "" takes none
}

func newTab(t *testing.T, base string) *tab {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)), chromedp.NoSandbox, chromedp.WindowSize(1280, 900))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	if _, err := chromedp.Run(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &tab{t: t, ctx: ctx, base: base, shot: os.Getenv("LETHE_CONSOLE_SCREENSHOTS")}
}

func (b *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v (at %s)", err, b.location())
	}
}

func (b *tab) location() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	return loc
}

func (b *tab) open(path string) { b.t.Helper(); b.do(chromedp.Navigate(b.base + path)) }

func (b *tab) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v (at %s)", sel, err, b.location())
	}
	return strings.TrimSpace(s)
}

// landed waits until the browser has loaded a page whose URL contains
// want (the answer to a form just submitted), so that what follows reads
// the new page, not the one the form was on.
func (b *tab) landed(want string) {
	b.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if strings.Contains(b.location(), want) && eval[string](b, "document.readyState") == "complete" {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("no page at %q after 60s (at %s)", want, b.location())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eval runs JavaScript in the page and decodes its (awaited) result.
func eval[T any](b *tab, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("eval %q: %v", js, err)
	}
	return v
}

// waitText reloads path until sel's text contains want.
func (b *tab) waitText(path, sel, want string, max time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(max)
	for {
		b.open(path)
		got := b.text(sel)
		if strings.Contains(got, want) {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s %s: %q, still not %q after %s", path, sel, got, want, max)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// screenshot saves the page as name.png for docs/console.md.
func (b *tab) screenshot(name string) {
	b.t.Helper()
	if b.shot == "" {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	// Quality 100 gives PNG; below it chromedp encodes JPEG.
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shot, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// TestConsoleInBrowser drives the console in a real headless Chromium
// against a real lethe serve on SQLite: sign in, review held requests,
// re-drive a failed one, extend, receipts, a 10,000-row import, the
// register export, roles and CSRF.
func TestConsoleInBrowser(t *testing.T) {
	chromiumPath(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "lethe.db")

	// The shop: a SQLite target with three customers.
	shopDSN := filepath.Join(dir, "shop.db")
	shop, err := sql.Open("sqlite", shopDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer shop.Close()
	if _, err := shop.Exec(`CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);
		INSERT INTO users (email) VALUES ('approve.me@example.com'), ('deny.me@example.com'), ('retry.me@example.com')`); err != nil {
		t.Fatal(err)
	}
	// The CRM: a webhook that is down for one subject until it recovers.
	var crmDown atomic.Bool
	crmDown.Store(true)
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if crmDown.Load() && strings.Contains(string(body), "retry.me@example.com") {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"done","counts":{"contacts":1}}`)
	}))
	t.Cleanup(crm.Close)

	srv := newServer(t, fmt.Sprintf(`db: %q
admin_token: ${LETHE_ADMIN_TOKEN}
workers: {max_attempts: 2, backoff_base: 100ms, backoff_max: 200ms}
review: {approve_regulations: [ccpa]}
targets:
  - name: shop
    kind: sql
    driver: sqlite
    dsn: %q
    tables:
      - {name: users, identities: {email: email}, action: delete}
  - name: crm
    kind: webhook
    url: %q
    secret: console-test-webhook-secret-0123
    identities: [email]
    timeout: 5s
    allow_hosts: [127.0.0.1]
`, db, shopDSN, crm.URL+"/erase"), "")
	key := func(name, role string) string {
		out := cli(t, nil, "operators", "create", "--db", db, "--log-level", "warn", "--name", name, "--role", role)
		var c struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal(out, &c); err != nil {
			t.Fatalf("operators create printed %q: %v", out, err)
		}
		return c.Token
	}
	ritaToken, adaToken := key("rita", "reviewer"), key("ada", "admin")
	srv.start()
	ctx := context.Background()
	submit := func(email, regulation string) string {
		var v struct {
			ID string `json:"id"`
		}
		code, err := srv.do(ctx, http.MethodPost, "/v1/deletion-requests", nil,
			map[string]any{"identities": []map[string]string{{"type": "email", "value": email}}, "regulation": regulation}, &v)
		if err != nil || code != http.StatusAccepted {
			t.Fatalf("submit: %d %v", code, err)
		}
		return v.ID
	}
	approveID := submit("approve.me@example.com", "ccpa")
	denyID := submit("deny.me@example.com", "ccpa")
	retryID := submit("retry.me@example.com", "gdpr")

	b := newTab(t, srv.url)
	signIn := func(name, token string) {
		b.open("/console/sign-in")
		b.screenshot("sign-in")
		b.do(chromedp.SendKeys(chromedp.CSS("#name"), name), chromedp.SendKeys(chromedp.CSS("#token"), token),
			chromedp.Submit(chromedp.CSS("#token")), chromedp.WaitVisible(chromedp.CSS("#count-held")))
	}
	signIn("rita", ritaToken)

	// The overview shows the two held requests.
	b.waitText("/console/", "#count-held", "2", 30*time.Second)
	b.screenshot("overview")

	// Approve one and watch it complete.
	b.open("/console/requests/" + approveID)
	b.screenshot("request-held")
	b.do(chromedp.SendKeys(chromedp.CSS("#n-approve"), "identity checked by phone"), chromedp.Submit(chromedp.CSS("#form-approve")))
	b.landed("done=approve")
	b.waitText("/console/requests/"+approveID, "#status", "completed", 2*time.Minute)
	if got := b.text("#timeline"); !strings.Contains(got, "rita") {
		t.Fatalf("timeline does not name the approving operator:\n%s", got)
	}
	b.screenshot("request-completed")

	// Extend the other, then deny it with a reason.
	b.open("/console/requests/" + denyID)
	dueBefore := b.text("#due")
	b.do(chromedp.SendKeys(chromedp.CSS("#d-extend"), "30"), chromedp.SendKeys(chromedp.CSS("#n-extend"), "identity documents awaited"),
		chromedp.Submit(chromedp.CSS("#form-extend")))
	b.landed("done=extend")
	if due := b.text("#due"); due == dueBefore || !strings.Contains(due, "extended from") {
		t.Fatalf("due after extension: %q (before %q)", due, dueBefore)
	}
	b.do(chromedp.SetValue(chromedp.CSS("#r-deny"), "insuf_verification"), chromedp.SendKeys(chromedp.CSS("#n-deny"), "no reply to verification"),
		chromedp.Submit(chromedp.CSS("#form-deny")))
	b.landed("done=deny")
	if st := b.text("#status"); st != "denied" {
		t.Fatalf("after deny: status %q", st)
	}

	// The request whose CRM was down failed; retry its task once the CRM
	// is back.
	b.waitText("/console/requests/"+retryID, "#status", "failed", 2*time.Minute)
	b.screenshot("request-failed")
	crmDown.Store(false)
	b.do(chromedp.Submit(chromedp.CSS(`tr[data-target="crm"] form.task-retry`)))
	b.landed("done=retry")
	b.waitText("/console/requests/"+retryID, "#status", "completed", 2*time.Minute)

	// Download the receipt and verify it with lethe receipt verify.
	b.open("/console/requests/" + approveID)
	receipt := eval[string](b, `fetch(document.getElementById("receipt-download").href).then(r => r.text())`)
	keys := eval[string](b, `fetch("/v1/signing-keys").then(r => r.text())`)
	rf, kf := filepath.Join(dir, "receipt.json"), filepath.Join(dir, "keys.json")
	if err := os.WriteFile(rf, []byte(receipt), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := cli(t, nil, "receipt", "verify", rf, "--keys-file", kf); !strings.Contains(string(out), "ok: receipt of request "+approveID) {
		t.Fatalf("lethe receipt verify: %s", out)
	}

	// A form posted without its CSRF token is refused and changes nothing.
	other := submit("csrf.victim@example.com", "ccpa")
	b.waitText("/console/requests/"+other, "#status", "held", time.Minute)
	b.do(chromedp.Evaluate[chromedp.Void](`document.querySelector("#form-approve input[name=csrf]").remove()`),
		chromedp.Submit(chromedp.CSS("#form-approve")), chromedp.WaitVisible(chromedp.CSS(".error")))
	if msg := b.text(".error"); !strings.Contains(msg, "CSRF") {
		t.Fatalf("approve without CSRF: %q", msg)
	}
	b.waitText("/console/requests/"+other, "#status", "held", time.Second)

	// Import 10,000 rows with 20 bad ones.
	csvPath := filepath.Join(dir, "requests.csv")
	bad := writeImportCSV(t, csvPath, 10_000, 20)
	b.open("/console/import")
	start := time.Now()
	b.do(chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{csvPath}), chromedp.Submit(chromedp.CSS("#file")),
		chromedp.WaitVisible(chromedp.CSS("#report")))
	if v, n := b.text("#valid-rows"), b.text("#bad-rows"); v != "9980" || n != "20" {
		t.Fatalf("report: %s valid, %s bad", v, n)
	}
	reported := map[string]bool{}
	for _, row := range strings.Split(b.text("#bad tbody"), "\n") {
		line, _, _ := strings.Cut(strings.TrimSpace(row), "\t")
		reported[line] = true
	}
	for _, line := range bad {
		if !reported[fmt.Sprint(line)] {
			t.Fatalf("the report does not name line %d: %v", line, reported)
		}
	}
	if len(reported) != len(bad) {
		t.Fatalf("the report names %d lines, want %d", len(reported), len(bad))
	}
	b.screenshot("import-report")
	b.do(chromedp.Click(chromedp.CSS("#submit-import")), chromedp.WaitVisible(chromedp.CSS("#import-progress")))
	progressURL := b.location()
	b.do(chromedp.Reload()) // the progress survives a reload
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(b.text("#import-text"), "100%") {
		if time.Now().After(deadline) {
			t.Fatalf("import progress after 3 min: %q", b.text("#import-text"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("10,000-row import: report and 9,980 requests stored in %s", time.Since(start).Round(time.Millisecond))
	b.screenshot("import-progress")
	if !strings.Contains(b.text("#import-text"), "9980 created") {
		t.Fatalf("import: %q (%s)", b.text("#import-text"), progressURL)
	}

	// Export the register and check it row by row.
	b.open("/console/export")
	b.screenshot("export")
	today := time.Now().UTC().Format("2006-01-02")
	regCSV := eval[string](b, `fetch("/console/export/register.csv?from=`+today+`&to=`+today+`").then(r => r.text())`)
	checkRegister(t, regCSV, map[string]string{approveID: "completed", denyID: "denied", retryID: "completed", other: "held"}, 9980)

	b.open("/console/requests")
	b.screenshot("requests")

	// A reviewer cannot reach the admin pages; an admin can.
	b.open("/console/admin")
	if msg := b.text("h1"); msg != "Forbidden" {
		t.Fatalf("reviewer at /console/admin sees %q", msg)
	}
	b.do(chromedp.Submit(chromedp.CSS("header .who form")), chromedp.WaitVisible(chromedp.CSS("#token")))
	signIn("ada", adaToken)
	b.open("/console/admin")
	if got := b.text("#targets"); !strings.Contains(got, "shop") || !strings.Contains(got, "crm") {
		t.Fatalf("admin targets: %q", got)
	}
	b.screenshot("admin")
}

// writeImportCSV writes rows requests (ccpa, so each waits for approval
// and the pipeline stays idle) of which bad are refused by validation,
// and returns the bad rows' line numbers.
func writeImportCSV(t *testing.T, path string, rows, bad int) []int {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := csv.NewWriter(f)
	_ = w.Write([]string{"email", "regulation", "external_id"})
	var lines []int
	every := rows / bad
	for i := 0; i < rows; i++ {
		email, reg := fmt.Sprintf("Imported.%05d@Example.com", i), "ccpa"
		if i%every == every-1 {
			lines = append(lines, i+2) // the header is line 1
			if i%2 == 0 {
				email = fmt.Sprintf("not-an-address-%d", i)
			} else {
				reg = "hipaa"
			}
		}
		_ = w.Write([]string{email, reg, fmt.Sprintf("crm-%d", i)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// checkRegister checks the exported register row by row: the header, one
// row per request, the known requests' statuses and operator actions, and
// every imported request waiting for approval under ccpa.
func checkRegister(t *testing.T, body string, known map[string]string, imported int) {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("register CSV: %v", err)
	}
	want := []string{"request_id", "client_id", "regulation", "status", "outcome", "received_at", "due_at", "extended_from", "closed_at", "targets", "operator_actions"}
	if strings.Join(recs[0], ",") != strings.Join(want, ",") {
		t.Fatalf("register header: %v", recs[0])
	}
	seen := map[string]bool{}
	held := 0
	for i, r := range recs[1:] {
		if len(r) != len(want) {
			t.Fatalf("row %d has %d columns", i+2, len(r))
		}
		id := r[0]
		if seen[id] {
			t.Fatalf("request %s twice", id)
		}
		seen[id] = true
		if _, err := time.Parse(time.RFC3339Nano, r[5]); err != nil {
			t.Fatalf("row %d received_at %q", i+2, r[5])
		}
		if strings.Contains(strings.ToLower(strings.Join(r, ",")), "example.com") {
			t.Fatalf("row %d holds an identity", i+2)
		}
		if st, ok := known[id]; ok {
			if r[3] != st {
				t.Fatalf("request %s: status %q, want %q", id, r[3], st)
			}
			delete(known, id)
			continue
		}
		// Imported: ccpa, waiting for approval (held once resolve has
		// seen it, received until then), submitted by the operator.
		if r[2] != "ccpa" || (r[3] != "held" && r[3] != "received") || !strings.Contains(r[10], "request.received operator:rita") {
			t.Fatalf("imported row %d: %v", i+2, r)
		}
		held++
	}
	if len(known) != 0 {
		t.Fatalf("register lacks %v", known)
	}
	if held != imported {
		t.Fatalf("register has %d imported requests, want %d", held, imported)
	}
}
