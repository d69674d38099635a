package manual

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/connector"
)

func TestOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		o    Options
		ok   bool
	}{
		{"good", Options{Owner: "records", Objects: []string{"letters"}}, true},
		{"no owner", Options{Objects: []string{"letters"}}, false},
		{"no objects", Options{Owner: "records"}, false},
		{"object that is not a name", Options{Owner: "records", Objects: []string{"ada@example.com list"}}, false},
		{"object twice", Options{Owner: "records", Objects: []string{"a", "a"}}, false},
		{"negative deadline", Options{Owner: "records", Objects: []string{"a"}, ConfirmWithin: -time.Hour}, false},
		{"remind url", Options{Owner: "records", Objects: []string{"a"}, RemindURL: "https://hooks.example.com/r"}, true},
		{"remind url not http", Options{Owner: "records", Objects: []string{"a"}, RemindURL: "ftp://hooks.example.com/r"}, false},
		{"remind url with credentials", Options{Owner: "records", Objects: []string{"a"}, RemindURL: "https://u:p@hooks.example.com/r"}, false},
		{"remind url without host", Options{Owner: "records", Objects: []string{"a"}, RemindURL: "https:///r"}, false},
	} {
		if _, err := New(tc.o); (err == nil) != tc.ok {
			t.Errorf("%s: New = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

// Erase never claims to be done: only an attestation ends the task.
func TestEraseWaitsForTheOwner(t *testing.T) {
	t.Parallel()
	c, err := New(Options{Owner: "records", Objects: []string{"letters"}, ConfirmWithin: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := c.Erase(context.Background(), connector.Subject{RequestID: "r"})
	var pe *connector.PendingError
	if !errors.As(err, &pe) || pe.After != DefaultRemindEvery || rep.Total() != 0 {
		t.Fatalf("Erase = %+v, %v; want pending after %s", rep, err, DefaultRemindEvery)
	}
	if c.ConfirmWithin() != 48*time.Hour || c.Manual() != "records" {
		t.Errorf("ConfirmWithin %s, owner %q", c.ConfirmWithin(), c.Manual())
	}
	plan, err := c.Plan(context.Background(), connector.Subject{RequestID: "r"})
	if err != nil || len(plan.Items) != 1 || plan.Items[0].Object != "letters" || plan.Items[0].Rows != 0 {
		t.Errorf("Plan = %+v, %v", plan, err)
	}
}
