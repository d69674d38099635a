package pipeline

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestGatherPanicWakesTheGroup: a group whose run panics still wakes its
// callers, each with errAbandoned, and hands the lead on, so later calls
// run instead of waiting for a leader that is gone.
func TestGatherPanicWakesTheGroup(t *testing.T) {
	type call struct{ err error }
	g := &gather[*call]{max: 10}
	gate, entered := make(chan struct{}), make(chan struct{})
	run := func(group []*call) {
		for _, c := range group {
			c.err = errAbandoned
		}
		if len(group) == 1 {
			close(entered)
			<-gate
			group[0].err = nil
			return
		}
		panic("a member's work panicked")
	}
	var wg sync.WaitGroup
	first := &call{}
	wg.Go(func() { g.do("first", first, run) })
	<-entered
	calls := make([]*call, 4)
	panics := make([]any, len(calls))
	for i := range calls {
		calls[i] = &call{}
		wg.Go(func() {
			defer func() { panics[i] = recover() }()
			g.do(fmt.Sprint(i), calls[i], run)
		})
		waitQueued(t, g, i+1)
	}
	close(gate)
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(waitTimeout):
		t.Fatal("the panicking group's callers never woke")
	}
	if first.err != nil {
		t.Fatalf("the first call: %v", first.err)
	}
	leaders := 0
	for i, c := range calls {
		if !errors.Is(c.err, errAbandoned) {
			t.Errorf("call %d of the panicking group got %v, want errAbandoned", i, c.err)
		}
		if panics[i] != nil {
			leaders++
		}
	}
	if leaders != 1 {
		t.Errorf("%d callers saw the panic, want its leader alone", leaders)
	}
	after := &call{err: errors.New("not run")}
	g.do("after", after, func(group []*call) { group[0].err = nil })
	if after.err != nil {
		t.Errorf("a call after the panic: %v", after.err)
	}
}
