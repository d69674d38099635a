package pipeline

import (
	"context"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/terminate"
)

// Terminate ends req, locked in tx with its tasks, the way every request
// ends (terminate.Path): the pipeline's finish and resolve call it, and so
// does intake's cancel, so the status event of every terminal status is
// stored and the completed ones are suppressed when configured.
func (p *Pipeline) Terminate(ctx context.Context, tx store.Tx, req *lethe.Request, tasks []lethe.Task, e terminate.Ending) (bool, error) {
	return p.end.Terminate(ctx, tx, req, tasks, e)
}
