package pipeline

import (
	"context"
	"fmt"

	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riversqlite"
)

// sqliteDriver is River's SQLite driver with one change: jobs that this
// process commits wake its workers at once. SQLite has no LISTEN/NOTIFY,
// so River keeps insert notifications in a table that its listener reads
// every 50ms; each request's first job, inserted by intake, waited up to
// that long before a worker took it, which was most of the time from
// request to completion under a light load. The table is still read, so
// jobs inserted by another process (the CLI's retries, say) are found as
// before.
type sqliteDriver struct {
	*riversqlite.Driver
	wake chan string // queues that have new jobs; see inserted
}

func newSQLiteDriver(d *riversqlite.Driver) *sqliteDriver {
	return &sqliteDriver{Driver: d, wake: make(chan string, 16)}
}

// GetListener wraps River's listener so that it also returns at a wake.
func (d *sqliteDriver) GetListener(params *riverdriver.GetListenenerParams) riverdriver.Listener {
	return &wakingListener{Listener: d.Driver.GetListener(params), wake: d.wake}
}

// inserted wakes the workers of queues; call it once the transaction that
// inserted their jobs has committed, or the fetch it causes finds nothing.
// A wake that does not fit in the buffer is dropped: one is pending
// already, and the table's notification follows anyway.
func (d *sqliteDriver) inserted(queues []string) {
	for _, q := range queues {
		select {
		case d.wake <- q:
		default:
		}
	}
}

// wakingListener is River's SQLite listener, which also answers a wake as
// the insert notification River's own would have delivered later.
type wakingListener struct {
	riverdriver.Listener
	wake chan string
}

// insertTopic and the payload are what River's client writes for an
// insert (client.maybeNotifyInsertForQueues) and its producers read.
const insertTopic = "river_insert"

func insertNotification(queue string) *riverdriver.Notification {
	return &riverdriver.Notification{Topic: insertTopic, Payload: fmt.Sprintf(`{"queue": %q}`, queue)}
}

type notificationResult struct {
	n   *riverdriver.Notification
	err error
}

func (l *wakingListener) WaitForNotification(ctx context.Context) (*riverdriver.Notification, error) {
	select {
	case q := <-l.wake:
		return insertNotification(q), nil
	default:
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res := make(chan notificationResult, 1)
	go func() {
		n, err := l.Listener.WaitForNotification(wctx)
		res <- notificationResult{n, err}
	}()
	select {
	case r := <-res:
		return r.n, r.err
	case q := <-l.wake:
		cancel()
		r := <-res
		if r.err == nil {
			// The table's notification came first: deliver it, and the
			// wake on the next call.
			select {
			case l.wake <- q:
			default:
			}
			return r.n, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return insertNotification(q), nil
	}
}
