package processor_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector/processor"
	"github.com/lethe-privacy/lethe/internal/pipeline"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// TestPipelineForwardsToLethe is lethe forwarding to lethe end to end: the
// forwarding lethe's real pipeline runs a processor-connect target and a
// processor-s2s target, each pointed at a receiving lethe. The connect
// task waits (pending, through the pipeline's checkpoints) until the
// receiver's own pipeline has completed the customer's deletion; the s2s
// task is done once the receiver accepted the user id. A 500 from the
// connect receiver costs one retried attempt, never a done.
func TestPipelineForwardsToLethe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn := startReceiver(t, receiverConfig{pipeline: true})
	s2sRecv := startReceiver(t, receiverConfig{})
	conn.failNext(connDelete, 1)

	co, so := connOptions(conn), s2sOptions(s2sRecv)
	co.Identities = []lethe.IdentityType{lethe.IdentityEmail, lethe.IdentityUserID}
	connTarget, err := processor.OpenConnect("storefront", co)
	if err != nil {
		t.Fatal(err)
	}
	s2sTarget, err := processor.OpenS2S("purchasely", so)
	if err != nil {
		t.Fatal(err)
	}

	st := testdb.OpenStore(t, "sqlite")
	if err := pipeline.Migrate(ctx, st); err != nil {
		t.Fatal(err)
	}
	pipe, err := pipeline.New(pipeline.Config{
		MaxAttempts:       3,
		BackoffBase:       10 * time.Millisecond,
		BackoffMax:        50 * time.Millisecond,
		FetchPollInterval: 20 * time.Millisecond,
		JobTimeout:        20 * time.Second,
		PendingMinWait:    10 * time.Millisecond,
	}, st, []pipeline.Target{{Name: "storefront", Conn: connTarget}, {Name: "purchasely", Conn: s2sTarget}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pipe.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := pipe.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})

	now := time.Now()
	req := &lethe.Request{
		ID: uuid.Must(uuid.NewV7()).String(), Regulation: lethe.GDPR,
		Status: lethe.StatusReceived, Stage: lethe.StageResolve,
		Identities: []lethe.Identity{connEmail, connUser, s2sUser1},
		SubjectKey: uuid.NewString(), ReceivedAt: now, DueAt: now.Add(time.Hour), UpdatedAt: now,
	}
	err = st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.CreateRequest(ctx, req); err != nil {
			return err
		}
		return pipe.EnqueueResolve(ctx, tx, req.ID)
	})
	if err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(30 * time.Second)
	var got *lethe.Request
	for {
		got, err = st.GetRequest(ctx, req.ID, store.Scope{All: true})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Terminal() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("request still %s/%s; tasks %+v", got.Status, got.Stage, got.Tasks)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got.Status != lethe.StatusCompleted {
		t.Fatalf("request ended %s; tasks %+v", got.Status, got.Tasks)
	}
	want := map[string]int64{"storefront": 3, "purchasely": 2} // the email and both user ids; the user ids
	for _, task := range got.Tasks {
		if task.State != lethe.TaskDone || task.Report.Total() != want[task.Target] {
			t.Errorf("task %s: %s, report %+v; want done forwarding %d", task.Target, task.State, task.Report, want[task.Target])
		}
		for _, it := range task.Report.Items {
			if it.Action != lethe.ActionForward {
				t.Errorf("task %s reports %s, want forward", task.Target, it.Action)
			}
		}
		for _, id := range req.Identities {
			if strings.Contains(task.LastError, id.Value) {
				t.Errorf("task %s: last error holds an identity value", task.Target)
			}
		}
	}
	// What each receiver holds: the connect one completed all three
	// identities; the s2s one has a request for each user id (and no email).
	if n := conn.count(t, []lethe.Identity{connEmail, connUser, s2sUser1}, func(q *lethe.Request) bool { return q == nil || q.Status != lethe.StatusCompleted }); n != 0 {
		t.Errorf("connect receiver: %d identities not completed", n)
	}
	if n := s2sRecv.count(t, []lethe.Identity{connUser, s2sUser1}, func(q *lethe.Request) bool { return q == nil }); n != 0 {
		t.Errorf("s2s receiver: %d user ids without a request", n)
	}
	if n := s2sRecv.count(t, []lethe.Identity{connEmail}, func(q *lethe.Request) bool { return q != nil }); n != 0 {
		t.Errorf("s2s receiver got the email, which the target may not receive")
	}
}
