// Package lethe holds the domain types shared by every part of the service:
// deletion requests, the identities they name, the per-target tasks that
// carry them out, and the audit events that record each change.
//
// It imports nothing else of lethe, so every other package may depend on it.
package lethe

import (
	"time"
)

// Status is the lifecycle state of a deletion request.
type Status string

const (
	// StatusReceived: accepted and persisted; erasure has not started, so
	// the request can still be canceled.
	StatusReceived Status = "received"
	// StatusRunning: erasure has started on at least one target.
	StatusRunning Status = "running"
	// StatusCompleted: every target was erased (or skipped) and verified.
	StatusCompleted Status = "completed"
	// StatusFailed: at least one target failed permanently.
	StatusFailed Status = "failed"
	// StatusCanceled: canceled before erasure started.
	StatusCanceled Status = "canceled"
	// StatusHeld: stopped for a person to decide (HoldReason says why),
	// before erasure starts or, under a legal hold, before its next
	// erase. An operator approves or releases it (it goes on) or denies
	// it (it ends denied).
	StatusHeld Status = "held"
	// StatusDenied: an operator refused the request (DenyReason says
	// why); nothing was erased.
	StatusDenied Status = "denied"
)

// Statuses lists every request status, in lifecycle order.
var Statuses = []Status{StatusReceived, StatusHeld, StatusRunning, StatusCompleted, StatusFailed, StatusCanceled, StatusDenied}

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	for _, v := range Statuses {
		if s == v {
			return true
		}
	}
	return false
}

// Terminal reports whether the pipeline has ended the request: nothing
// further happens to it by itself. A failed request is the one exception
// an operator can make: until it is closed (StageClosed) it keeps its
// identities sealed and can be re-driven.
func (s Status) Terminal() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCanceled || s == StatusDenied
}

// Open reports whether the request still holds work to do; open requests
// are the ones duplicates are checked against.
func (s Status) Open() bool { return s == StatusReceived || s == StatusRunning || s == StatusHeld }

// Cancelable reports whether a request at (status, stage) can still be
// canceled: erasure has not started (received, or held before resolve
// let it start).
func Cancelable(s Status, stage Stage) bool {
	return s == StatusReceived || (s == StatusHeld && stage == StageResolve)
}

// Redrivable reports whether an operator may retry a request at (status,
// stage): it failed and has not been closed for good.
func Redrivable(s Status, stage Stage) bool { return s == StatusFailed && stage == StageDone }

// Stage is the pipeline's position inside a request. It is internal
// bookkeeping: every step advances it with a compare-and-set in the same
// transaction that enqueues the next job, which is what makes each step run
// to effect exactly once even when jobs are duplicated or retried.
type Stage string

const (
	StageResolve Stage = "resolve" // waiting for linked identities to be resolved
	StageErase   Stage = "erase"   // erase tasks are running, one per target
	StageVerify  Stage = "verify"  // every task has ended; verification queued
	StageFinish  Stage = "finish"  // verified; the finish step is queued
	StageDone    Stage = "done"    // terminal; nothing further runs
	// StageClosed: a failed request an operator closed for good (or one
	// that failed before re-drive existed): its identities are dropped
	// and nothing can re-drive it.
	StageClosed Stage = "closed"
)

// HoldReason says why a request is held.
type HoldReason string

const (
	// HoldAmbiguousSubject: resolve found the identities reach more than
	// one account; an operator decides whether they are one person.
	HoldAmbiguousSubject HoldReason = "ambiguous_subject"
	// HoldApprovalRequired: the approval policy (per regulation or client)
	// asks an operator to approve before erasure starts.
	HoldApprovalRequired HoldReason = "approval_required"
	// HoldWaitingPeriod: erasure starts only once the configured waiting
	// period has passed, unless the request is canceled first.
	HoldWaitingPeriod HoldReason = "waiting_period"
	// HoldLegal: an operator placed a legal hold (with a reason); nothing
	// is erased until it is released.
	HoldLegal HoldReason = "legal_hold"
)

// HoldReasons lists every hold reason.
var HoldReasons = []HoldReason{HoldAmbiguousSubject, HoldApprovalRequired, HoldWaitingPeriod, HoldLegal}

// DenyReason is why an operator denied a request: the Data Rights
// Protocol's reason codes, so partners can map them one to one.
type DenyReason string

const (
	DenySuspectedFraud      DenyReason = "suspected_fraud"
	DenyInsufVerification   DenyReason = "insuf_verification"
	DenyNoMatch             DenyReason = "no_match"
	DenyClaimNotCovered     DenyReason = "claim_not_covered"
	DenyOutsideJurisdiction DenyReason = "outside_jurisdiction"
	DenyTooManyRequests     DenyReason = "too_many_requests"
	DenyOther               DenyReason = "other"
)

// DenyReasons lists every deny reason code.
var DenyReasons = []DenyReason{DenySuspectedFraud, DenyInsufVerification, DenyNoMatch,
	DenyClaimNotCovered, DenyOutsideJurisdiction, DenyTooManyRequests, DenyOther}

// Valid reports whether r is a known deny reason code.
func (r DenyReason) Valid() bool {
	for _, v := range DenyReasons {
		if r == v {
			return true
		}
	}
	return false
}

// Regulation names the law a request is made under; it decides the due date.
type Regulation string

const (
	GDPR Regulation = "gdpr"
	CCPA Regulation = "ccpa"
)

// DefaultDeadlines are the statutory response periods used when the
// configuration does not override them: GDPR Art. 12(3) one month (30 days),
// CCPA 45 days.
var DefaultDeadlines = map[Regulation]time.Duration{
	GDPR: 30 * 24 * time.Hour,
	CCPA: 45 * 24 * time.Hour,
}

// Request is one data-subject deletion request.
type Request struct {
	ID         string // UUIDv7: sorts by creation time
	ClientID   string // the client that submitted it; empty for the admin
	ExternalID string // the submitter's own reference, opaque to lethe
	Regulation Regulation
	Status     Status
	Stage      Stage

	// Identities are the subject's identities in plaintext. They exist only
	// in memory; the store keeps them sealed and drops them when the
	// request closes.
	Identities []Identity
	// SubjectKey is a keyed hash of the normalised given identities; it
	// finds an open request for the same subject without reading plaintext.
	SubjectKey string
	// IdempotencyKey makes a retried submission return the first answer.
	IdempotencyKey string
	CallbackURL    string
	// CallbackFormat names the protocol its status callbacks speak: ""
	// for lethe's own, or the intake profile that took it ("drp",
	// "opendsr"), which renders and signs them.
	CallbackFormat string

	ReceivedAt  time.Time
	DueAt       time.Time
	StartedAt   time.Time // zero until erasure starts
	CompletedAt time.Time // zero until terminal
	UpdatedAt   time.Time

	// Outcome says what a request that ended found: set when it ends
	// (completed: erased or no_match; failed before erasing anything:
	// ambiguous_subject), "" while it is open and for other ends.
	Outcome Outcome
	// Reach is how far the subject's identities reached during resolve;
	// nil until resolve has run (and for requests older than it).
	Reach *Reach

	Tasks []Task // filled by reads that ask for them
}

// Outcome is what an ended request found in the targets. Partners and
// regulators need "erased" told apart from "we hold nothing on this
// person" (DRP's and Ketch's no_match), and both from a request that
// stopped because its subject could not be told apart from others.
type Outcome string

const (
	// OutcomeErased: the request completed and at least one target held
	// data of the subject (deleted, pseudonymised, retained or forwarded).
	OutcomeErased Outcome = "erased"
	// OutcomeNoMatch: the request completed and no target held anything
	// of the subject.
	OutcomeNoMatch Outcome = "no_match"
	// OutcomeAmbiguousSubject: resolve found that the identities reach
	// more than one account (record of a root object), so nothing was
	// erased and the request failed; Reach says how many accounts.
	OutcomeAmbiguousSubject Outcome = "ambiguous_subject"
)

// Reach is how far a subject's identities reached in the targets: counts
// and names from the data map, never values.
type Reach struct {
	// Accounts counts, per "target/object" (a root table, a Redis
	// index), the distinct records of that root object the identities
	// reached. More than one anywhere makes the subject ambiguous.
	Accounts map[string]int `json:"accounts,omitempty"`
	// Unfollowed names, as "target/object.column", where linked values were
	// found and not followed because each matched more accounts than the
	// target's follow limit (placeholders such as +10000000000).
	Unfollowed []string `json:"unfollowed,omitempty"`
}

// Ambiguous reports whether the identities reached more than one record
// of some root object.
func (r *Reach) Ambiguous() bool {
	if r == nil {
		return false
	}
	for _, n := range r.Accounts {
		if n > 1 {
			return true
		}
	}
	return false
}

// MatchOutcome is the outcome of a request that completed with these
// tasks: no_match when no target reports a row, key or record of any
// action, erased otherwise. Identities forwarded to another system count
// as a match: that system may hold data, and lethe cannot say it does not.
func MatchOutcome(tasks []Task) Outcome {
	for _, t := range tasks {
		for _, it := range t.Report.Items {
			if it.Rows > 0 {
				return OutcomeErased
			}
		}
	}
	return OutcomeNoMatch
}

// TaskState is the state of one request-on-one-target task.
type TaskState string

const (
	TaskPending TaskState = "pending"
	TaskRunning TaskState = "running"
	TaskDone    TaskState = "done"
	TaskFailed  TaskState = "failed"
	TaskSkipped TaskState = "skipped"
)

// Terminal reports whether the task has ended.
func (s TaskState) Terminal() bool {
	return s == TaskDone || s == TaskFailed || s == TaskSkipped
}

// Task is the erasure of one request on one target.
type Task struct {
	RequestID  string
	Target     string
	State      TaskState
	Attempts   int
	LastError  string // redacted: never holds an identity value
	Report     Report // changed (retain: kept) over all attempts, as the target confirmed it; see pipeline.settle
	StartedAt  time.Time
	FinishedAt time.Time
	UpdatedAt  time.Time
}

// Action is what a connector does to one object (table, key pattern, ...).
type Action string

const (
	ActionDelete       Action = "delete"
	ActionPseudonymize Action = "pseudonymize"
	ActionRetain       Action = "retain"
	ActionForward      Action = "forward" // passed on to another system
)

// Report lists, per object, what a connector planned, did, or found left.
// It holds counts and names from the data map, never identity values.
type Report struct {
	Items []ReportItem `json:"items"`
}

// ReportItem is one object's line in a Report.
type ReportItem struct {
	Object string    `json:"object"`           // e.g. "orders" or "session:{user_id}"
	Action Action    `json:"action"`           // what was (or would be) done
	Rows   int64     `json:"rows"`             // rows / keys / records affected
	Reason string    `json:"reason,omitempty"` // why retained
	Until  time.Time `json:"until,omitempty"`  // retained until
	// LowerBound marks a count that may be short: the target confirmed
	// Rows, but an attempt's confirmation was lost (lethe stopped between
	// the target's change and its own record of it) and the target keeps
	// no ledger to read it back from. Never set for counts read from a
	// ledger (connector.Ledger).
	LowerBound bool `json:"lower_bound,omitempty"`
	// Reference is the receiving system's id for what was forwarded (a
	// processor's deletion job ids, comma-separated); never an identity.
	Reference string `json:"reference,omitempty"`
}

// Total sums Rows over all items.
func (r Report) Total() int64 {
	var n int64
	for _, it := range r.Items {
		n += it.Rows
	}
	return n
}

// Actor is who caused an audit event.
type Actor string

const (
	ActorAdmin  Actor = "admin"
	ActorClient Actor = "client"
	ActorSystem Actor = "system"
	// ActorOperator is a named operator; the event's ActorID is its name.
	ActorOperator Actor = "operator"
)

// Act is who does an operator's action (an approval, a retry, ...), as its
// audit event records them, with the free text the action takes (a note,
// a reason). The text never holds an identity.
type Act struct {
	Actor   Actor
	ActorID string // the operator's name
	Note    string
}

// EventType names what an audit event records. docs/audit.md describes
// each; a test fails when one is missing there.
type EventType string

// Audit event types. Request events name the request's status or step;
// task events the task's state.
const (
	EventRequestReceived   EventType = "request.received"
	EventRequestRunning    EventType = "request.running"
	EventRequestVerified   EventType = "request.verified"
	EventRequestCompleted  EventType = "request.completed"
	EventRequestFailed     EventType = "request.failed"
	EventRequestCanceled   EventType = "request.canceled"
	EventRequestSuppressed EventType = "request.suppressed"
	EventRequestDueSoon    EventType = "request.due_soon"
	EventRequestOverdue    EventType = "request.overdue"
	EventRequestPurged     EventType = "request.purged"
	EventRequestHeld       EventType = "request.held"
	EventRequestReleased   EventType = "request.released"
	EventRequestApproved   EventType = "request.approved"
	EventRequestDenied     EventType = "request.denied"
	EventRequestRetried    EventType = "request.retried"
	EventRequestClosed     EventType = "request.closed"
	// EventRequestExtended: an operator extended the due date, once,
	// within the law's bound (ExtensionBound).
	EventRequestExtended EventType = "request.extended"

	EventTaskRunning   EventType = "task.running"
	EventTaskPending   EventType = "task.pending"
	EventTaskConfirmed EventType = "task.confirmed"
	EventTaskDone      EventType = "task.done"
	EventTaskFailed    EventType = "task.failed"
	EventTaskSkipped   EventType = "task.skipped"
	EventTaskRetried   EventType = "task.retried"
	EventTaskAttested  EventType = "task.attested"
	// EventTaskReminded: a reminder that a manual target's task waits for
	// its owner was queued for the target's remind_url.
	EventTaskReminded EventType = "task.reminded"

	EventReceiptIssued      EventType = "receipt.issued"
	EventIdentitiesDropped  EventType = "identities.dropped"
	EventSuppressionRemoved EventType = "suppression.removed"
	// EventIdentitiesRevealed: an operator had an open request's
	// identities shown in full in the console.
	EventIdentitiesRevealed EventType = "identities.revealed"
)

// EventTypes lists every audit event type.
var EventTypes = []EventType{
	EventRequestReceived, EventRequestRunning, EventRequestVerified,
	EventRequestCompleted, EventRequestFailed, EventRequestCanceled,
	EventRequestSuppressed, EventRequestDueSoon, EventRequestOverdue, EventRequestPurged,
	EventRequestHeld, EventRequestReleased, EventRequestApproved, EventRequestDenied,
	EventRequestRetried, EventRequestClosed,
	EventRequestExtended,
	EventTaskRunning, EventTaskPending, EventTaskConfirmed,
	EventTaskDone, EventTaskFailed, EventTaskSkipped,
	EventTaskRetried, EventTaskAttested, EventTaskReminded,
	EventReceiptIssued, EventIdentitiesDropped, EventSuppressionRemoved, EventIdentitiesRevealed,
}

// StatusEvent is the event type of a request reaching status s; "" for
// received, whose event says who submitted it (EventRequestReceived).
func StatusEvent(s Status) EventType {
	switch s {
	case StatusRunning:
		return EventRequestRunning
	case StatusCompleted:
		return EventRequestCompleted
	case StatusFailed:
		return EventRequestFailed
	case StatusCanceled:
		return EventRequestCanceled
	case StatusHeld:
		return EventRequestHeld
	case StatusDenied:
		return EventRequestDenied
	}
	return ""
}

// TaskEvent is the event type of a task reaching state s.
func TaskEvent(s TaskState) EventType {
	switch s {
	case TaskRunning:
		return EventTaskRunning
	case TaskDone:
		return EventTaskDone
	case TaskFailed:
		return EventTaskFailed
	case TaskSkipped:
		return EventTaskSkipped
	}
	return ""
}

// AuditEvent records one state change. Details never hold identity values.
type AuditEvent struct {
	Seq       int64 // assigned by the store
	RequestID string
	Time      time.Time
	Actor     Actor
	ActorID   string // client id for ActorClient, operator name for ActorOperator (and the admin token's name for its operator actions)
	Type      EventType
	Details   map[string]string
	PrevHash  string // hex; filled by the store
	Hash      string // hex; filled by the store
}

// Client is a partner or application allowed to submit requests.
type Client struct {
	ID        string
	Name      string
	Disabled  bool
	CreatedAt time.Time
}
