package testdb

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// A connection refused by a full server is tried again until it opens;
// any other error is returned at once.
func TestWhileFull(t *testing.T) {
	full := []error{
		fmt.Errorf("open postgres: %w", &pgconn.PgError{Code: "53300", Message: "sorry, too many clients already"}),
		&mysql.MySQLError{Number: 1040, Message: "Too many connections"},
	}
	calls := 0
	v, err := whileFull(context.Background(), func(context.Context) (int, error) {
		calls++
		if calls <= len(full) {
			return 0, full[calls-1]
		}
		return 7, nil
	})
	if err != nil || v != 7 || calls != 3 {
		t.Errorf("whileFull = %d, %v after %d calls; want 7 after 3", v, err, calls)
	}

	other := &pgconn.PgError{Code: "28P01"} // invalid_password
	calls = 0
	_, err = whileFull(context.Background(), func(context.Context) (int, error) {
		calls++
		return 0, other
	})
	if !errors.Is(err, other) || calls != 1 {
		t.Errorf("whileFull = %v after %d calls; want the error after 1", err, calls)
	}
}
