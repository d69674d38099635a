package sqlconn

import (
	"database/sql"
	"time"

	"github.com/lethe-privacy/lethe/connector"
)

// LargeTableRows lets the tests build a table just above the threshold.
var LargeTableRows = largeTableRows

// NewOpenedBy is New with the pool opened by sqlOpen (a counting driver).
func NewOpenedBy(t connector.Target, sqlOpen func(driver, dsn string) (*sql.DB, error)) (*Connector, error) {
	var o Options
	if err := t.DecodeOptions(&o); err != nil {
		return nil, err
	}
	return open(t.Name, o, sqlOpen)
}

// NewWaitingUpTo is New with new connections waiting at most max while
// the server is full.
func NewWaitingUpTo(t connector.Target, max time.Duration) (*Connector, error) {
	var o Options
	if err := t.DecodeOptions(&o); err != nil {
		return nil, err
	}
	return open(t.Name, o, waitingOpen(t.Name, max))
}

// Conns reports the pool's open and idle connections.
func (c *Connector) Conns() (open, idle int) {
	st := c.db.Stats()
	return st.OpenConnections, st.Idle
}

// SetParams lowers the parameters one statement may carry, so that a test
// reaches the limit with a few subjects.
func (c *Connector) SetParams(n int) { c.params = n }

// SetConfirmLimit lowers the rows one identity column may confirm, so that
// a test reaches the limit with a few rows.
func (c *Connector) SetConfirmLimit(n int) { c.confirm = n }
