package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// Identities of the failing-target test, normalised as intake stores them,
// and a remote error quoting them the ways remote systems do.
var (
	faultEmail = lethe.Identity{Type: lethe.IdentityEmail, Value: "alice+tag@example.com"}
	faultPhone = lethe.Identity{Type: lethe.IdentityPhone, Value: "+447700900123"}
	faultError = "409 from crm: subject alice%2Btag%40example.com (ALICE+TAG@EXAMPLE.COM) " +
		"still referenced; phone 07700 900123 / +44 7700 900123; SQLSTATE 23503"
)

// faultForms are the forms of faultEmail and faultPhone that must appear
// nowhere lethe keeps text, compared ignoring case.
var faultForms = []string{
	"alice+tag@example.com", "alice%2btag%40example.com", "alice+tag", "alice%2btag",
	"+447700900123", "447700900123", "07700 900123", "7700 900123", "7700900123",
}

// formsIn returns the identity forms s holds.
func formsIn(s string) []string {
	var found []string
	low := strings.ToLower(s)
	for _, f := range faultForms {
		if strings.Contains(low, f) {
			found = append(found, f)
		}
	}
	return found
}

// TestFormsInSeesUnredactedText: the check below would catch an error kept
// as the target gave it, in each of its encodings.
func TestFormsInSeesUnredactedText(t *testing.T) {
	got := formsIn(faultError)
	for _, want := range []string{"alice%2btag%40example.com", "alice+tag@example.com", "07700 900123", "7700 900123"} {
		if !strings.Contains(strings.Join(got, "\n"), want) {
			t.Errorf("formsIn(the raw error) = %q, misses %q", got, want)
		}
	}
	if got := formsIn("task failed: <redacted> still referenced; SQLSTATE 23503"); len(got) != 0 {
		t.Errorf("formsIn(redacted text) = %q, want none", got)
	}
}

// TestFailingTargetKeepsNoIdentityForm: a target whose errors quote the
// subject URL-encoded, upper-cased and as a formatted national phone
// number, first transiently (River records each attempt's error) and then
// for good. No form may reach the task's last error, the audit details,
// the log or River's error column, while the SQLSTATE stays readable.
func TestFailingTargetKeepsNoIdentityForm(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		bad, good := newMemTarget(), newMemTarget()
		bad.eraseErr = errors.New(faultError) // transient: retried until attempts run out
		logs := &testdb.SyncBuffer{}
		log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		cfg := testConfig()
		cfg.MaxAttempts = 3
		p, err := New(cfg, st, []Target{{"bad", bad}, {"good", good}}, log, nil)
		if err != nil {
			t.Fatal(err)
		}
		startBuilt(t, p)

		id := submit(t, st, p, faultEmail, faultPhone)
		r := waitDone(t, st, id, lethe.StatusFailed)
		waitIdle(t, p)

		check := func(what, s string) {
			t.Helper()
			if found := formsIn(s); len(found) > 0 {
				t.Errorf("%s holds identity forms %q: %q", what, found, s)
			}
		}
		task := taskOf(t, r, "bad")
		if task.State != lethe.TaskFailed || task.Attempts != 3 {
			t.Errorf("bad task: state %s attempts %d, want failed after 3", task.State, task.Attempts)
		}
		if !strings.Contains(task.LastError, "SQLSTATE 23503") || !strings.Contains(task.LastError, redacted) {
			t.Errorf("LastError = %q, want it redacted with the SQLSTATE readable", task.LastError)
		}
		check("LastError", task.LastError)
		events, err := st.ListAudit(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			for k, v := range e.Details {
				check("audit "+string(e.Type)+" "+k, v)
			}
		}
		jobErrors := riverJobErrors(t, st)
		var recorded int
		for _, e := range jobErrors {
			if strings.Contains(e, "SQLSTATE 23503") {
				recorded++
			}
			check("river_job.errors", e)
		}
		if recorded == 0 {
			t.Errorf("River recorded no error of the failing target (%q): nothing was checked", jobErrors)
		}
		if !strings.Contains(logs.String(), "SQLSTATE 23503") {
			t.Errorf("the log holds no error of the failing target: nothing was checked")
		}
		check("log", logs.String())
	})
}
