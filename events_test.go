package lethe_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe"
)

// eventConstants returns the value of every EventType constant declared
// in lethe.go, read from the source so a new constant cannot hide.
func eventConstants(t *testing.T) []lethe.EventType {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "lethe.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []lethe.EventType
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "EventType" {
				continue
			}
			for _, v := range vs.Values {
				s, err := strconv.Unquote(v.(*ast.BasicLit).Value)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, lethe.EventType(s))
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("found no EventType constants in lethe.go")
	}
	return out
}

func TestEveryEventTypeIsListedAndDocumented(t *testing.T) {
	doc, err := os.ReadFile("docs/audit.md")
	if err != nil {
		t.Fatal(err)
	}
	consts := eventConstants(t)
	for _, c := range consts {
		if !slices.Contains(lethe.EventTypes, c) {
			t.Errorf("%s is missing from lethe.EventTypes", c)
		}
		// A row of the table in docs/audit.md, not a mention in prose.
		if !strings.Contains(string(doc), "\n| `"+string(c)+"` |") {
			t.Errorf("docs/audit.md has no table row for the audit event %s", c)
		}
	}
	if len(lethe.EventTypes) != len(consts) {
		t.Errorf("lethe.EventTypes has %d entries, lethe.go declares %d constants", len(lethe.EventTypes), len(consts))
	}
}

func TestStatusAndTaskEvents(t *testing.T) {
	for _, s := range lethe.Statuses {
		e := lethe.StatusEvent(s)
		if s == lethe.StatusReceived {
			if e != "" {
				t.Errorf("StatusEvent(received) = %q, want none", e)
			}
			continue
		}
		if e != lethe.EventType("request."+string(s)) || !slices.Contains(lethe.EventTypes, e) {
			t.Errorf("StatusEvent(%s) = %q", s, e)
		}
	}
	for _, s := range []lethe.TaskState{lethe.TaskRunning, lethe.TaskDone, lethe.TaskFailed, lethe.TaskSkipped} {
		if e := lethe.TaskEvent(s); e != lethe.EventType("task."+string(s)) || !slices.Contains(lethe.EventTypes, e) {
			t.Errorf("TaskEvent(%s) = %q", s, e)
		}
	}
	if e := lethe.TaskEvent(lethe.TaskPending); e != "" {
		t.Errorf("TaskEvent(pending) = %q, want none", e)
	}
}
