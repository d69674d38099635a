package pipeline

import (
	"context"
	"slices"
	"strconv"

	"github.com/riverqueue/river"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

// attested is implemented by connectors of targets a person erases by hand
// (connector/manual): their tasks wait for an operator's attestation.
type attested interface {
	Manual() string    // who is asked to act
	Objects() []string // what an attestation may report
}

// AttestTask records an operator's word that the erasure on a manual
// target was done: counts per object (report) and a note. The task's
// erase job is woken in the same transaction and ends the task done with
// those counts; the receipt names the operator (attested_by) instead of
// calling the target verified. Attesting twice is a conflict.
func (p *Pipeline) AttestTask(ctx context.Context, id, target string, report lethe.Report, by lethe.Act) (*lethe.Request, error) {
	m, ok := p.byName[target].(attested)
	if !ok {
		return nil, lethe.Errorf(lethe.EINVALID, "target %q is not a manual target; only those are attested", target)
	}
	objects := m.Objects()
	for i, it := range report.Items {
		if !slices.Contains(objects, it.Object) {
			return nil, lethe.Errorf(lethe.EINVALID, "items[%d].object is not an object of target %q", i, target)
		}
		if it.Rows < 0 {
			return nil, lethe.Errorf(lethe.EINVALID, "items[%d].rows must not be negative", i)
		}
		if it.Action == "" {
			report.Items[i].Action = lethe.ActionDelete
		} else if it.Action != lethe.ActionDelete && it.Action != lethe.ActionPseudonymize && it.Action != lethe.ActionRetain {
			return nil, lethe.Errorf(lethe.EINVALID, "items[%d].action must be delete, pseudonymize or retain", i)
		}
		report.Items[i].Reason, report.Items[i].Reference, report.Items[i].LowerBound = "", "", false
	}
	return p.act(ctx, id, func(tx store.Tx, req *lethe.Request) error {
		t, err := taskIn(ctx, tx, id, target)
		if err != nil {
			return err
		}
		if t.State.Terminal() {
			return lethe.Errorf(lethe.ECONFLICT, "task on %q is %s; only a waiting task can be attested", target, t.State)
		}
		if err := p.checkRequestNote(ctx, tx, "note", by.Note, id); err != nil {
			return err
		}
		ok, err := tx.RecordTaskCompletion(ctx, id, target, store.TaskCompletion{Report: report}, p.now())
		if err != nil {
			return err
		}
		if !ok {
			return lethe.Errorf(lethe.ECONFLICT, "task on %q is not waiting for an attestation yet (or was attested already)", target)
		}
		if _, err := tx.AddTaskProgress(ctx, id, target, report, p.now()); err != nil {
			return err
		}
		details := map[string]string{"target": target, "rows": strconv.FormatInt(report.Total(), 10), "owner": m.Manual()}
		if by.Note != "" {
			details["note"] = by.Note
		}
		if err := p.actionAudit(ctx, tx, id, by, lethe.EventTaskAttested, details); err != nil {
			return err
		}
		return p.eng.insertTx(ctx, tx, []river.InsertManyParams{wakeEraseJob(id, target)})
	})
}
