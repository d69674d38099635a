package console

import (
	"archive/zip"
	"encoding/json"
	"net/http"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/httpapi"
	"github.com/lethe-privacy/lethe/internal/store"
)

// exportPage is how many register entries or receipts one store read
// takes while an export streams.
const exportPage = 1000

type exportView struct {
	From, To string
}

func (c *Console) handleExportPage(w http.ResponseWriter, r *http.Request, s *session) {
	now := c.opts.Now().UTC()
	v := exportView{From: now.AddDate(0, -1, 0).Format("2006-01-02"), To: now.Format("2006-01-02")}
	c.render(w, http.StatusOK, "export", page{Title: "Export", Operator: s.principal, CSRF: s.csrf, Data: v})
}

// dateRange reads from and to (YYYY-MM-DD, both inclusive) from the query.
func dateRange(r *http.Request) (from, before time.Time, err error) {
	q := r.URL.Query()
	if v := q.Get("from"); v != "" {
		if from, err = time.Parse("2006-01-02", v); err != nil {
			return from, before, lethe.Errorf(lethe.EINVALID, "From must be a date (YYYY-MM-DD).")
		}
	}
	if v := q.Get("to"); v != "" {
		to, err := time.Parse("2006-01-02", v)
		if err != nil {
			return from, before, lethe.Errorf(lethe.EINVALID, "To must be a date (YYYY-MM-DD).")
		}
		before = to.AddDate(0, 0, 1)
	}
	if !from.IsZero() && !before.IsZero() && !from.Before(before) {
		return from, before, lethe.Errorf(lethe.EINVALID, "From must not be after to.")
	}
	return from, before, nil
}

// handleRegisterCSV streams the register for requests received in the
// range, exactly as the native API's export does.
func (c *Console) handleRegisterCSV(w http.ResponseWriter, r *http.Request, s *session) {
	from, before, err := dateRange(r)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	f := store.RegisterFilter{Scope: store.Scope{All: true}, ReceivedFrom: from, ReceivedBefore: before, Limit: exportPage}
	if err := httpapi.WriteRegisterCSV(w, r, c.opts.Store, f, c.log); err != nil {
		c.fail(w, r, s, err)
	}
}

// handleReceiptsZip streams a zip of the signed receipts issued in the
// range, with the public keys that verify them and a note on how.
func (c *Console) handleReceiptsZip(w http.ResponseWriter, r *http.Request, s *session) {
	from, before, err := dateRange(r)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	ctx := r.Context()
	keys, err := audit.PublicKeys(ctx, c.opts.Store)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", `attachment; filename="lethe-receipts.zip"`)
	zw := zip.NewWriter(w)
	abort := func(err error) {
		c.log.Error("console: receipts export", "error", err.Error())
		panic(http.ErrAbortHandler)
	}
	kw, _ := zw.Create("signing-keys.json")
	_ = json.NewEncoder(kw).Encode(map[string]any{"keys": keys})
	nw, _ := zw.Create("README.txt")
	_, _ = nw.Write([]byte(receiptsReadme))
	cursor := ""
	for {
		page, err := c.opts.Store.ListReceipts(ctx, store.Scope{All: true}, cursor, exportPage)
		if err != nil {
			abort(err)
		}
		for _, rec := range page {
			if (!from.IsZero() && rec.IssuedAt.Before(from)) || (!before.IsZero() && !rec.IssuedAt.Before(before)) {
				continue
			}
			full, err := c.opts.Store.GetReceipt(ctx, rec.RequestID, store.Scope{All: true})
			if err != nil {
				abort(err)
			}
			fw, err := zw.Create("receipts/" + rec.RequestID + ".json")
			if err != nil {
				abort(err)
			}
			_, _ = fw.Write(full.Body)
		}
		if len(page) < exportPage {
			break
		}
		cursor = page[len(page)-1].RequestID
	}
	if err := zw.Close(); err != nil {
		abort(err)
	}
}

const receiptsReadme = `lethe receipts

receipts/ holds one signed receipt per request (JSON, exactly as issued).
signing-keys.json holds the Ed25519 public keys that sign them, by key id.

Check a receipt with the lethe binary:

    lethe receipt verify --keys-file signing-keys.json receipts/ID.json

or with any Ed25519 implementation: the signature covers the canonical
JSON of the "receipt" member (docs/receipts.md describes the format).
`
