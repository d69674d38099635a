package console

import (
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/intake"
	"github.com/lethe-privacy/lethe/internal/operators"
	"github.com/lethe-privacy/lethe/internal/store"
)

const (
	// maxImportBytes caps an upload (and the confirmation form that
	// carries its sealed rows back).
	maxImportBytes = 32 << 20
	// maxImportRows caps one import; bigger registers are split.
	maxImportRows = 100_000
	// maxReportedRows caps the bad rows the report lists one by one.
	maxReportedRows = 200
	// importBatch is how many rows one progress step submits.
	importBatch = 200
	// importWorkers submit a batch's rows concurrently: intake commits
	// requests arriving together in one transaction (up to 64 on
	// SQLite), so this many in flight fill its batches.
	importWorkers = 64
	// importLease is how long a node holds an import between progress
	// steps; a node that dies loses it after this long.
	importLease = 30 * time.Second
)

// Identity columns of an import file; a row needs at least one.
var importIdentityColumns = []lethe.IdentityType{lethe.IdentityEmail, lethe.IdentityPhone, lethe.IdentityUserID}

// badRow is a refused row in the validation report: its line and why,
// never its values.
type badRow struct {
	Line   int
	Reason string
}

// importReport is the validation page's data.
type importReport struct {
	FileRows int
	Valid    int
	Bad      []badRow
	BadCount int
	Sealed   string // the valid rows, sealed for this session, sent back on submit
}

type importView struct {
	Report  *importReport
	Imports []store.Import
}

func (c *Console) handleImportPage(w http.ResponseWriter, r *http.Request, s *session) {
	imps, err := c.opts.Store.ListImports(r.Context(), 10)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	c.render(w, http.StatusOK, "import", page{Title: "Import", Operator: s.principal, CSRF: s.csrf, Data: importView{Imports: imps}})
}

// handleImportUpload validates an uploaded CSV and shows the report;
// nothing is stored. The valid rows travel back with the confirmation
// form, sealed to this session, so no node has to keep them meanwhile.
func (c *Console) handleImportUpload(w http.ResponseWriter, r *http.Request, s *session) {
	f, _, err := r.FormFile("file")
	if err != nil {
		c.fail(w, r, s, lethe.Errorf(lethe.EINVALID, "Choose a CSV file to upload."))
		return
	}
	defer f.Close()
	rows, rep, err := c.validateCSV(f)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	if len(rows) > 0 {
		plain, err := json.Marshal(rows)
		if err != nil {
			c.fail(w, r, s, err)
			return
		}
		rep.Sealed = base64.RawURLEncoding.EncodeToString(c.opts.Keys.Seal(plain, uploadAAD(s)))
	}
	c.render(w, http.StatusOK, "import", page{Title: "Import", Operator: s.principal, CSRF: s.csrf, Data: importView{Report: rep}})
}

func uploadAAD(s *session) []byte { return []byte("console_upload:" + s.idHash) }

// validateCSV reads an import file: a header naming columns among email,
// phone, user_id, regulation and external_id, then one request per row.
// Each row is checked exactly as intake will check it.
func (c *Console) validateCSV(f io.Reader) ([]store.ImportRow, *importReport, error) {
	cr := csv.NewReader(f)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, nil, lethe.Errorf(lethe.EINVALID, "The file is not a CSV with a header row.")
	}
	cols := map[string]int{}
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		switch name {
		case "email", "phone", "user_id", "regulation", "external_id":
		default:
			return nil, nil, lethe.Errorf(lethe.EINVALID, "Column %d of the header is not one of email, phone, user_id, regulation, external_id.", i+1)
		}
		if _, dup := cols[name]; dup {
			return nil, nil, lethe.Errorf(lethe.EINVALID, "The header names column %s twice.", name)
		}
		cols[name] = i
	}
	if _, ok := cols["regulation"]; !ok {
		return nil, nil, lethe.Errorf(lethe.EINVALID, "The header has no regulation column.")
	}
	rep := &importReport{}
	var rows []store.ImportRow
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := cr.FieldPos(0)
		rep.FileRows++
		if rep.FileRows > maxImportRows {
			return nil, nil, lethe.Errorf(lethe.EINVALID, "The file has more than %d rows; split it.", maxImportRows)
		}
		bad := func(reason string) {
			rep.BadCount++
			if len(rep.Bad) < maxReportedRows {
				rep.Bad = append(rep.Bad, badRow{Line: line, Reason: reason})
			}
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				line = pe.Line
			}
			bad("not valid CSV")
			continue
		}
		get := func(name string) string {
			if i, ok := cols[name]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		sub := intake.Submission{Actor: lethe.ActorAdmin, Regulation: lethe.Regulation(strings.ToLower(get("regulation"))), ExternalID: get("external_id")}
		for _, t := range importIdentityColumns {
			if v := get(string(t)); v != "" {
				sub.Identities = append(sub.Identities, lethe.Identity{Type: t, Value: v})
			}
		}
		if len(sub.Identities) == 0 {
			bad("no identity (email, phone or user_id)")
			continue
		}
		if _, err := c.opts.Intake.Check(sub); err != nil {
			// intake's messages name fields and rules, never values.
			bad(lethe.ErrorMessage(err))
			continue
		}
		rows = append(rows, store.ImportRow{Line: line, Identities: sub.Identities, Regulation: sub.Regulation, ExternalID: sub.ExternalID})
	}
	rep.Valid = len(rows)
	return rows, rep, nil
}

// handleImportSubmit stores the confirmed rows as an import the
// background worker carries out, and shows its progress page.
func (c *Console) handleImportSubmit(w http.ResponseWriter, r *http.Request, s *session) {
	sealed, err := base64.RawURLEncoding.DecodeString(r.FormValue("rows"))
	var plain []byte
	if err == nil {
		plain, err = c.opts.Keys.Open(sealed, uploadAAD(s))
	}
	var rows []store.ImportRow
	if err == nil {
		err = json.Unmarshal(plain, &rows)
	}
	if err != nil || len(rows) == 0 {
		c.fail(w, r, s, lethe.Errorf(lethe.EINVALID, "The validated rows did not come back intact; upload the file again."))
		return
	}
	id, err := uuid.NewV7()
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	if err := c.opts.Store.CreateImport(r.Context(), store.Import{ID: id.String(), Operator: s.principal.Name, CreatedAt: c.opts.Now()}, rows); err != nil {
		c.fail(w, r, s, err)
		return
	}
	c.wakeImports()
	http.Redirect(w, r, Prefix+"import/"+id.String(), http.StatusSeeOther)
}

func (c *Console) handleImportProgressPage(w http.ResponseWriter, r *http.Request, s *session) {
	imp, err := c.getImport(r)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	c.render(w, http.StatusOK, "importprogress", page{Title: "Import", Operator: s.principal, CSRF: s.csrf, Data: imp})
}

// progressView is the JSON the progress script polls.
type progressView struct {
	State      string `json:"state"`
	Total      int    `json:"total"`
	Done       int    `json:"done"`
	Created    int    `json:"created"`
	Duplicates int    `json:"duplicates"`
	Failed     int    `json:"failed"`
}

func (c *Console) handleImportProgress(w http.ResponseWriter, r *http.Request, s *session) {
	imp, err := c.getImport(r)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(progressView{State: imp.State, Total: imp.Total, Done: imp.Done, Created: imp.Created, Duplicates: imp.Duplicates, Failed: imp.Failed})
}

func (c *Console) getImport(r *http.Request) (store.Import, error) {
	id := r.PathValue("id")
	if !validID(id) {
		return store.Import{}, store.ErrNotFound
	}
	return c.opts.Store.GetImport(r.Context(), id)
}

// wakeImports nudges this node's import worker when an import is created
// here; other nodes find it on their next poll.
func (c *Console) wakeImports() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// RunImports carries out imports until ctx ends: it leases one import at
// a time (so each runs on one node), submits its rows in batches through
// intake, and records progress after each batch. Each row is submitted
// with an idempotency key of the import and the row's line, so a batch
// repeated after a crash creates nothing twice.
func (c *Console) RunImports(ctx context.Context) {
	for {
		worked, err := c.runOneImport(ctx)
		if err != nil && ctx.Err() == nil {
			c.log.Error("console: import", "error", err.Error())
		}
		if worked {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		case <-time.After(2 * time.Second):
		}
	}
}

func (c *Console) runOneImport(ctx context.Context) (bool, error) {
	now := c.opts.Now()
	imp, rows, err := c.opts.Store.LeaseImport(ctx, c.opts.NodeID, now, now.Add(importLease))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// The requests are the importing operator's submissions: intake
	// audits each under its name.
	ctx = operators.WithPrincipal(ctx, operators.Principal{Name: imp.Operator, Role: operators.RoleReviewer})
	for start := 0; start < len(rows); start += importBatch {
		batch := rows[start:min(start+importBatch, len(rows))]
		p, err := c.submitBatch(ctx, imp.ID, batch)
		if err != nil {
			return true, err
		}
		now := c.opts.Now()
		ok, err := c.opts.Store.AdvanceImport(ctx, imp.ID, c.opts.NodeID, p, now, now.Add(importLease))
		if err != nil || !ok {
			return true, err // lost the lease: the new holder goes on
		}
	}
	return true, nil
}

// submitBatch submits rows concurrently and counts the outcomes. A row
// intake refuses now (it passed validation, so the rules changed, or its
// subject is suppressed) counts as failed; a store error stops the batch
// so that it is repeated.
func (c *Console) submitBatch(ctx context.Context, importID string, rows []store.ImportRow) (store.ImportProgress, error) {
	var (
		mu   sync.Mutex
		p    = store.ImportProgress{Done: len(rows)}
		errs []error
		wg   sync.WaitGroup
		next = make(chan store.ImportRow)
	)
	for range importWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for row := range next {
				_, outcome, err := c.opts.Intake.Submit(ctx, intake.Submission{
					Actor: lethe.ActorAdmin, Identities: row.Identities, Regulation: row.Regulation, ExternalID: row.ExternalID,
					IdempotencyKey: "import-" + importID + "-" + strconv.Itoa(row.Line),
				})
				mu.Lock()
				switch {
				case err == nil && outcome == intake.Duplicate:
					p.Duplicates++
				case err == nil:
					p.Created++ // a replay after a crash was created by this import too
				case lethe.ErrorCode(err) != lethe.EINTERNAL && lethe.ErrorCode(err) != lethe.EUNAVAILABLE:
					p.Failed++
				default:
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		}()
	}
	for _, row := range rows {
		next <- row
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		return store.ImportProgress{}, fmt.Errorf("submit import rows: %w", errors.Join(errs...))
	}
	return p, nil
}
