package console

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe"
)

// funcs are the template helpers.
var funcs = template.FuncMap{
	"date": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02")
	},
	"datetime": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"overdue": func(due time.Time, status lethe.Status) bool {
		return status.Open() && !due.IsZero() && due.Before(time.Now())
	},
	"short":  shortID,
	"label":  label,
	"client": clientLabel,
}

// label is a code (status, reason, action) as words: "legal_hold" →
// "legal hold".
func label(v any) string {
	return strings.ReplaceAll(fmt.Sprint(v), "_", " ")
}

func clientLabel(id string) string {
	if id == "" {
		return "operator"
	}
	return id
}

// timelineEntry is one audit event in plain words.
type timelineEntry struct {
	Time time.Time
	Text string
	Who  string
}

// eventWords says what each audit event means to a privacy officer. An
// event missing here is shown by its type, so a new event is never
// hidden from the timeline.
var eventWords = map[lethe.EventType]string{
	lethe.EventRequestReceived:    "Request received",
	lethe.EventRequestRunning:     "Erasure started",
	lethe.EventRequestVerified:    "Erasure verified: nothing of the subject is left in the targets",
	lethe.EventRequestCompleted:   "Request completed",
	lethe.EventRequestFailed:      "Request failed",
	lethe.EventRequestCanceled:    "Request canceled",
	lethe.EventRequestSuppressed:  "Subject added to the suppression list",
	lethe.EventRequestDueSoon:     "Due date is near",
	lethe.EventRequestOverdue:     "Due date passed",
	lethe.EventRequestPurged:      "Request details purged",
	lethe.EventRequestExtended:    "Due date extended",
	lethe.EventTaskRunning:        "Target task started",
	lethe.EventTaskPending:        "Target accepted the erasure and is working on it",
	lethe.EventTaskConfirmed:      "Target confirmed the erasure",
	lethe.EventTaskDone:           "Target task done",
	lethe.EventTaskFailed:         "Target task failed",
	lethe.EventTaskSkipped:        "Target task skipped",
	lethe.EventReceiptIssued:      "Signed receipt issued",
	lethe.EventIdentitiesDropped:  "Identities dropped: only keyed hashes remain",
	lethe.EventSuppressionRemoved: "Suppression removed",
	lethe.EventIdentitiesRevealed: "Identities revealed to an operator",
	lethe.EventRequestHeld:        "Held for a decision",
	lethe.EventRequestReleased:    "Hold released",
	lethe.EventRequestApproved:    "Approved: erasure may start",
	lethe.EventRequestDenied:      "Denied",
	lethe.EventRequestRetried:     "Retried",
	lethe.EventRequestClosed:      "Closed as failed for good",
	lethe.EventTaskRetried:        "Target task retried",
	lethe.EventTaskAttested:       "Erasure attested by an operator",
}

// detailWords are the event details shown beside the words: names and
// codes, never values (audit details hold no identity).
var detailWords = []string{"target", "reason", "hold", "note_kind", "due_at", "previous_due_at", "outcome", "attempt", "by"}

func timeline(events []lethe.AuditEvent) []timelineEntry {
	out := make([]timelineEntry, 0, len(events))
	for _, e := range events {
		text, ok := eventWords[e.Type]
		if !ok {
			text = label(e.Type)
		}
		var parts []string
		for _, k := range detailWords {
			if v := e.Details[k]; v != "" {
				parts = append(parts, label(k)+": "+label(v))
			}
		}
		if len(parts) > 0 {
			text += " (" + strings.Join(parts, ", ") + ")"
		}
		who := string(e.Actor)
		if e.ActorID != "" {
			who += " " + e.ActorID
		}
		out = append(out, timelineEntry{Time: e.Time, Text: text, Who: who})
	}
	return out
}

// mask shows enough of an identity to recognise it and no more:
// a•••@e•••.com, +•••••••1234, u•••42.
func mask(id lethe.Identity) string {
	v := id.Value
	switch id.Type {
	case lethe.IdentityEmail:
		local, domain, ok := strings.Cut(v, "@")
		if !ok {
			return first(v) + "•••"
		}
		host, tld := domain, ""
		if i := strings.LastIndexByte(domain, '.'); i > 0 {
			host, tld = domain[:i], domain[i:]
		}
		return first(local) + "•••@" + first(host) + "•••" + tld
	case lethe.IdentityPhone:
		if len(v) <= 4 {
			return "•••"
		}
		return strings.Repeat("•", min(len(v)-4, 8)) + v[len(v)-4:]
	default:
		if len(v) <= 2 {
			return "•••"
		}
		return first(v) + "•••" + v[len(v)-min(2, len(v)/3):]
	}
}

func first(s string) string {
	for _, r := range s {
		return string(r)
	}
	return ""
}

// chart is the overview's bar chart of requests per week, drawn as SVG
// coordinates by the server.
type chart struct {
	Width, Height int
	Bars          []bar
	Max           int
}

type bar struct {
	X, Y, W, H   int
	CY, CH       int // the completed part
	Label, Title string
	ShowLabel    bool
}

func weeklyChart(weeks []week) chart {
	const w, h, pad = 640, 160, 20
	c := chart{Width: w, Height: h + pad}
	for _, wk := range weeks {
		c.Max = max(c.Max, wk.Received)
	}
	if len(weeks) == 0 {
		return c
	}
	slot := w / len(weeks)
	for i, wk := range weeks {
		b := bar{X: i*slot + 2, W: max(slot-4, 1), Label: wk.Start.Format("Jan 2"), ShowLabel: i%3 == 0,
			Title: fmt.Sprintf("Week of %s: %d received, %d completed", wk.Start.Format("2006-01-02"), wk.Received, wk.Completed)}
		if c.Max > 0 {
			b.H = wk.Received * h / c.Max
			b.CH = wk.Completed * h / c.Max
		}
		b.Y, b.CY = h-b.H, h-b.CH
		c.Bars = append(c.Bars, b)
	}
	return c
}
