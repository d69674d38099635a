// Package connector is the contract between lethe's pipeline and the systems
// that hold personal data. A connector knows one kind of system (a SQL
// database, a cache, a service's webhook, a processor's deletion API); the
// data map configures one instance of it per target.
//
// Connectors are registered explicitly by the binary (no init side effects)
// in a Registry, and every implementation runs the conformance suite in
// connectortest.
package connector

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/lethe-privacy/lethe"
)

// Subject is the person whose data a request erases: every identity given or
// resolved for the request. Connectors must never log or return the values.
type Subject struct {
	RequestID  string
	Identities []lethe.Identity
	// Checkpoint is what this connector's last Pending answer for the
	// task carried (a check URL, a processor's request id), handed back by
	// the pipeline; "" on the first call. See Pending.
	Checkpoint string
	// CallbackToken lets the target confirm the erasure by calling lethe
	// back (POST /v1/tasks/{token}/complete). The pipeline sets it only
	// for connectors whose Completer.AcceptsCallbacks is true; it stays
	// the same for every call of one task.
	CallbackToken string
}

// Values returns the values of the identities of type t, in order.
func (s Subject) Values(t lethe.IdentityType) []string {
	var out []string
	for _, id := range s.Identities {
		if id.Type == t {
			out = append(out, id.Value)
		}
	}
	return out
}

// Connector is what the pipeline calls for one target. Every method must be
// safe for concurrent use, honour ctx cancellation, and never put identity
// values into returned errors.
type Connector interface {
	// Resolve returns identities linked to the given ones in this target
	// (the email finds users.id = 42, so user_id 42 is returned). It
	// changes nothing. Returning the given identities again is allowed.
	Resolve(ctx context.Context, s Subject) ([]lethe.Identity, error)
	// Plan reports what Erase would do, changing nothing.
	Plan(ctx context.Context, s Subject) (lethe.Report, error)
	// Erase removes or pseudonymises the subject's data and reports what it
	// did. It is idempotent: a second call after success changes nothing
	// and reports zero rows; a call after a partial run finishes the rest.
	// Rows count what this call changed, as the target confirmed it, so
	// the pipeline sums the reports of its attempts. On error the report
	// still holds what was committed before the error. A process crash
	// mid-call loses that call's report: a connector that can prevent it
	// implements Ledger; for the others the pipeline marks the task's
	// lines as lower bounds (lethe.ReportItem.LowerBound), never filling
	// them from Plan. Retained objects are reported with ActionRetain and
	// never changed; a re-run may no longer reach rows kept through a
	// parent it already deleted, so for them the pipeline keeps the
	// largest count reported.
	Erase(ctx context.Context, s Subject) (lethe.Report, error)
	// Verify re-checks the target after Erase. A nil error means nothing
	// erasable is left; otherwise the error says what remains (names and
	// counts, no values).
	Verify(ctx context.Context, s Subject) error
}

// SubjectResolver is implemented by connectors that know which of their
// records are the subject's accounts (the data map's root entity, such as a
// users table). The pipeline finds it by type assertion; for a connector
// without it, Resolve is all there is and no root records are reported.
//
// ResolveSubject is Resolve that also says how far the identities reach,
// so that the pipeline can stop before erasing anyone else: it changes
// nothing, must honour ctx, and its Resolution never holds a value outside
// Identities. Resolve and ResolveSubject return the same Identities.
//
// A connector implementing it follows only the values that identify one
// person (columns or keys the map marks as followed), and never a value
// that matches more root records than the map's follow limit (a
// placeholder shared by many accounts): such a value is left out of
// Identities and its kind named in Unfollowed.
type SubjectResolver interface {
	ResolveSubject(ctx context.Context, s Subject) (Resolution, error)
}

// Resolution is what ResolveSubject found.
type Resolution struct {
	// Identities are the linked identities, as Resolve returns them.
	Identities []lethe.Identity
	// RootRecords counts, per root object (a table, a Redis index), the
	// distinct root records reached by the subject's identities: those
	// given and those found. More than one in any object means the
	// identities name several accounts (Ambiguous). Objects the
	// identities reach no record of may be absent.
	RootRecords map[string]int
	// Unfollowed names where values were found that were not followed
	// because each matched more root records than the follow limit, as
	// "object.column" (or the Redis entry): kinds, never values. Sorted,
	// without duplicates.
	Unfollowed []string
	// Closed says the connector followed what it found until nothing new
	// turned up: asked again with the identities it was given and those it
	// returned, and no others, it would find nothing new. The pipeline
	// then asks it again only with identities found elsewhere.
	Closed bool
}

// Ambiguous reports whether the identities reach more than one record of
// some root object, so erasing would touch more than one account.
func (r Resolution) Ambiguous() bool {
	for _, n := range r.RootRecords {
		if n > 1 {
			return true
		}
	}
	return false
}

// Ledger is implemented by connectors whose target records, in the same
// transaction as each change, what the change did (a SQL target's
// lethe_erasure_ledger). Changed reads that record back: per object and
// action, the rows changed for s.RequestID over every Erase call so far,
// failed and crashed ones included, and nothing that was rolled back. The
// pipeline takes it as the task's report instead of summing what Erase
// calls returned, which a crash between a commit and lethe's own
// bookkeeping would leave short. It changes no subject data.
type Ledger interface {
	Changed(ctx context.Context, s Subject) (lethe.Report, error)
}

// FullReporter is implemented by connectors whose Erase report is the
// whole report on its own. FullReports true promises two things:
//
//   - every report of Erase lists every object the connector handles, in
//     its order, with its action, its reason and, for a retained object,
//     the rows kept, even objects with no rows: a Plan taken before the
//     first attempt would add nothing to the task's report;
//   - for a connector that also implements Ledger, the report of an Erase
//     (or EraseBatch) call that returned no error, the first call for its
//     subject, is exactly what Changed would read back after it.
//
// The pipeline then erases without planning first, and after such a first
// call takes its report instead of reading the ledger; a retry, or a rerun
// after a crash, still reads the ledger. False is the same as not
// implementing it.
type FullReporter interface {
	FullReports() bool
}

// FullReports reports whether c implements FullReporter and says true.
func FullReports(c Connector) bool {
	f, ok := c.(FullReporter)
	return ok && f.FullReports()
}

// BatchEraser is implemented by connectors that can erase several
// subjects of one target in fewer statements and transactions than one
// Erase call each (a SQL target deletes every subject's rows of a table
// in one statement per batch). The pipeline finds it by type assertion
// and may hand it the subjects of erase tasks that are waiting together;
// a connector without it gets one Erase call per subject.
//
// EraseBatch erases every subject in subjects as Erase would and returns
// one report per subject, in the order given (len(reports) ==
// len(subjects) whenever err is nil). Each report counts exactly that
// subject's rows, as Erase's would: rows two subjects share are counted
// once, for the first subject in the slice that matches them. A
// connector that also implements Ledger records every subject's changes
// under its own Subject.RequestID, so Changed(s) stays exact per
// subject after a crash mid-batch. The contract of Erase holds per
// subject: idempotent, a re-run finishes what a failed or crashed batch
// left, and identity values never appear in the error.
//
// On error, reports (when not nil, still one per subject) hold what was
// committed before the error; the pipeline retries the subjects one by
// one or as a batch, either being correct. The subjects must have
// distinct RequestIDs.
type BatchEraser interface {
	EraseBatch(ctx context.Context, subjects []Subject) ([]lethe.Report, error)
}

// BatchVerifier is implemented by connectors that can verify several
// subjects of one target in fewer statements than one Verify call each (a
// SQL target asks once whether any of the subjects' rows is left). The
// pipeline finds it by type assertion and may hand it the subjects of
// verifications that are waiting together; a connector without it gets
// one Verify call per subject.
//
// VerifyBatch verifies every subject in subjects as Verify would and
// returns one answer per subject, in the order given (len(result) ==
// len(subjects)): nil when nothing erasable of that subject is left,
// otherwise the error its own Verify would return, saying what remains of
// that subject alone. Another subject's rows, shared ones included, never
// make an answer fail or pass that its own Verify would not. Whatever a
// Verify does when it passes (a SQL target forgets the key values it kept
// for it) is done for each subject that passes, and only for those.
// Identity values never appear in an answer. The subjects must have
// distinct RequestIDs.
type BatchVerifier interface {
	VerifyBatch(ctx context.Context, subjects []Subject) []error
}

// Validator is implemented by connectors that can check their
// configuration against the live system (tables exist, keys are reachable)
// at start, before any request runs.
type Validator interface {
	Validate(ctx context.Context) error
}

// Closer releases a connector's connections on shutdown.
type Closer interface {
	Close() error
}

// Target is one configured instance: the data map entry for one system.
type Target struct {
	Name string // unique in the data map; tasks are keyed by it
	Kind string // selects the Info in the Registry
	// Decode fills v (a pointer to the connector's own options struct) from
	// the target's options in the config file, with ${VAR} already expanded.
	Decode func(v any) error
}

// DecodeOptions fills v from the target's options, as a connector's
// constructor does first; errors name the target.
func (t Target) DecodeOptions(v any) error {
	if t.Decode == nil {
		return fmt.Errorf("target %q: no options", t.Name)
	}
	if err := t.Decode(v); err != nil {
		return fmt.Errorf("target %q: options: %w", t.Name, err)
	}
	return nil
}

// Info describes one connector kind.
type Info struct {
	Kind string
	New  func(ctx context.Context, t Target) (Connector, error)
}

// Registry maps connector kinds to constructors.
type Registry struct {
	mu    sync.RWMutex
	kinds map[string]Info
}

// NewRegistry returns a Registry holding infos.
func NewRegistry(infos ...Info) (*Registry, error) {
	r := &Registry{kinds: map[string]Info{}}
	for _, in := range infos {
		if err := r.Register(in); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Register adds a kind; registering a kind twice is an error.
func (r *Registry) Register(in Info) error {
	if in.Kind == "" || in.New == nil {
		return errors.New("connector: Info needs Kind and New")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.kinds[in.Kind]; ok {
		return fmt.Errorf("connector: kind %q registered twice", in.Kind)
	}
	r.kinds[in.Kind] = in
	return nil
}

// Kinds lists the registered kinds, sorted.
func (r *Registry) Kinds() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.kinds))
	for k := range r.kinds {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// New builds the connector for t.
func (r *Registry) New(ctx context.Context, t Target) (Connector, error) {
	r.mu.RLock()
	in, ok := r.kinds[t.Kind]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("target %q: unknown connector kind %q (known: %v)", t.Name, t.Kind, r.Kinds())
	}
	c, err := in.New(ctx, t)
	if err != nil {
		return nil, TargetError(t.Name, err)
	}
	return c, nil
}

// TargetError prefixes err with the target's name, unless the connector
// already did (connectors name their target in their own errors), so a
// message never reads `target "shop": target "shop": ...`.
func TargetError(name string, err error) error {
	if err == nil {
		return nil
	}
	prefix := fmt.Sprintf("target %q: ", name)
	if strings.HasPrefix(err.Error(), prefix) {
		return err
	}
	return fmt.Errorf("%s%w", prefix, err)
}

// permanent marks an error that retrying cannot fix.
type permanent struct{ err error }

func (p *permanent) Error() string { return p.err.Error() }
func (p *permanent) Unwrap() error { return p.err }

// Permanent wraps err so the pipeline fails the task at once instead of
// retrying (bad configuration, a table that no longer exists, a 4xx).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanent{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanent
	return errors.As(err, &p)
}
