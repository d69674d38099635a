package pipeline

import (
	"context"
	"fmt"
	"sync"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
)

// memTarget is an in-memory system holding rows per identity, with
// injectable failures. Its errors quote identity values on purpose: the
// pipeline must scrub them before storing or logging anything.
type memTarget struct {
	mu    sync.Mutex
	rows  map[lethe.Identity]int64
	links map[lethe.Identity][]lethe.Identity // what Resolve finds

	failErase    int   // this many Erase calls fail (transiently) first
	eraseErr     error // when set, every Erase fails with it
	resolveErr   error
	verifyErr    error
	leaveResidue bool // Erase reports success but leaves the rows
	block        bool // Erase blocks until its context is done

	entered  chan struct{} // receives once per Erase call when non-nil
	calls    map[string]int
	subjects []connector.Subject // what Erase was given
}

func newMemTarget() *memTarget {
	return &memTarget{
		rows:  map[lethe.Identity]int64{},
		links: map[lethe.Identity][]lethe.Identity{},
		calls: map[string]int{},
	}
}

var _ connector.Connector = (*memTarget)(nil)

func (m *memTarget) count(method string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[method]
}

func (m *memTarget) held(id lethe.Identity) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rows[id]
}

func (m *memTarget) put(id lethe.Identity, n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rows[id] = n
}

func (m *memTarget) Resolve(ctx context.Context, s connector.Subject) ([]lethe.Identity, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls["resolve"]++
	if m.resolveErr != nil {
		return nil, m.resolveErr
	}
	var out []lethe.Identity
	for _, id := range s.Identities {
		out = append(out, m.links[id]...)
	}
	return out, nil
}

// Plan counts what Erase would delete; the pipeline takes it before the
// first Erase attempt of a task.
func (m *memTarget) Plan(ctx context.Context, s connector.Subject) (lethe.Report, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls["plan"]++
	var n int64
	for _, id := range s.Identities {
		n += m.rows[id]
	}
	return lethe.Report{Items: []lethe.ReportItem{{Object: "rows", Action: lethe.ActionDelete, Rows: n}}}, nil
}

func (m *memTarget) Erase(ctx context.Context, s connector.Subject) (lethe.Report, error) {
	m.mu.Lock()
	m.calls["erase"]++
	m.subjects = append(m.subjects, s)
	block, entered := m.block, m.entered
	m.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if block {
		<-ctx.Done()
		return lethe.Report{}, fmt.Errorf("erase of %s interrupted: %w", s.Identities[0].Value, ctx.Err())
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.eraseErr != nil {
		return lethe.Report{}, m.eraseErr
	}
	if m.failErase > 0 {
		m.failErase--
		return lethe.Report{}, fmt.Errorf("connection reset while deleting rows of %s", s.Identities[0].Value)
	}
	var n int64
	for _, id := range s.Identities {
		n += m.rows[id]
		if !m.leaveResidue {
			delete(m.rows, id)
		}
	}
	return lethe.Report{Items: []lethe.ReportItem{{Object: "rows", Action: lethe.ActionDelete, Rows: n}}}, nil
}

func (m *memTarget) Verify(ctx context.Context, s connector.Subject) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls["verify"]++
	if m.verifyErr != nil {
		return m.verifyErr
	}
	for _, id := range s.Identities {
		if n := m.rows[id]; n > 0 {
			return fmt.Errorf("%d rows left for %s", n, id.Value)
		}
	}
	return nil
}
