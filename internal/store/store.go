// Package store is lethe's persistence seam: requests, their identities and
// tasks, audit events, clients and their credentials, access tokens and rate
// limit state. Two implementations share one SQL core: sqlite (the embedded
// default) and postgres. storetest holds the conformance suite both run.
//
// Every method of Queries is available on the Store (each call its own
// transaction) and on a Tx (all calls in one transaction). The pipeline
// relies on that: a state change, its audit event and the next job commit
// together or not at all.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/lethe-privacy/lethe"
)

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("store: not found")

// ErrConflict is returned when a unique constraint would be violated
// (duplicate idempotency key, client name, credential).
var ErrConflict = errors.New("store: conflict")

// Store is an open database.
type Store interface {
	Queries
	// InTx runs fn in one transaction: committed when fn returns nil,
	// rolled back otherwise (and on panic). Writes on SQLite take the write
	// lock at BEGIN, so transactions never fail on a lock upgrade.
	InTx(ctx context.Context, fn func(Tx) error) error
	// Ready returns nil when the database answers and every migration of
	// this binary is applied.
	Ready(ctx context.Context) error
	// Dialect is "sqlite" or "postgres".
	Dialect() string
	// Driver returns the connection pool (*sql.DB for sqlite,
	// *pgxpool.Pool for postgres) so River can share the database.
	Driver() any
	Close() error
}

// Tx is a Store scoped to one transaction.
type Tx interface {
	Queries
	// Driver returns the driver transaction (*sql.Tx for sqlite, pgx.Tx for
	// postgres) so River can insert and complete jobs in it.
	Driver() any
	// AfterCommit runs fn once the transaction has committed, in the order
	// registered, and never if it rolls back: for what must not happen
	// before others can see the transaction's writes (waking the workers
	// that will read them).
	AfterCommit(fn func())
}

// Queries is every operation; the smaller interfaces let consumers declare
// only what they use.
type Queries interface {
	Requests
	Tasks
	Audit
	Clients
	RateLimits
	Proofs
	StatusEvents
	Suppressions
	Purges
	TaskWaits
	Deadlines
	Reviews
	Operators
	Extensions
	Register
	Console
	ProfileKeys
}

// Requests persists deletion requests and their identities. Identities are
// sealed (AES-256-GCM) on write and opened on read; callers see plaintext.
type Requests interface {
	// CreateRequest inserts r with its Identities (given identities).
	// r.ID, timestamps, Status and Stage must be set by the caller.
	// ErrConflict if (ClientID, IdempotencyKey) is taken.
	CreateRequest(ctx context.Context, r *lethe.Request) error
	// GetRequest returns the request with its tasks. With clientID set, a
	// request of another client is ErrNotFound. Identities are not filled.
	GetRequest(ctx context.Context, id string, scope Scope) (*lethe.Request, error)
	// ReadRequest returns the request of any client without its tasks:
	// one statement, for the pipeline's steps that read only the row.
	ReadRequest(ctx context.Context, id string) (*lethe.Request, error)
	// LockRequest reads the request for update (FOR UPDATE on postgres;
	// sqlite transactions already hold the write lock). Only inside InTx;
	// on the Store it returns an error. Tasks are not filled.
	LockRequest(ctx context.Context, id string) (*lethe.Request, error)
	// ListRequests returns requests newest first, with the cursor for the
	// next page ("" when there is none). Tasks are not filled.
	ListRequests(ctx context.Context, f ListFilter) ([]*lethe.Request, string, error)
	// FindRequestByIdempotencyKey returns the request submitted by
	// clientID ("" for admin) under key, or ErrNotFound.
	FindRequestByIdempotencyKey(ctx context.Context, clientID, key string) (*lethe.Request, error)
	// FindOpenRequest returns the newest open (received or running) request
	// of clientID for subjectKey, or ErrNotFound.
	FindOpenRequest(ctx context.Context, clientID, subjectKey string) (*lethe.Request, error)
	// LatestRequestsBySubject returns, per subject key, the newest request
	// of clientID (any status). Keys without a request are absent.
	LatestRequestsBySubject(ctx context.Context, clientID string, subjectKeys []string) (map[string]*lethe.Request, error)
	// UpdateRequestState moves a request from one of from to (status, stage)
	// and reports whether it did: the compare-and-set every pipeline step
	// and cancel rely on. StartedAt is set when the status becomes running
	// and CompletedAt when it becomes terminal.
	UpdateRequestState(ctx context.Context, p UpdateRequestStateParams) (bool, error)
	// RequestIdentities returns the given and linked identities (opened),
	// given ones first, each group in the order stored. Identities whose
	// values were dropped are not returned.
	RequestIdentities(ctx context.Context, requestID string) ([]lethe.Identity, error)
	// AddLinkedIdentities stores identities found by resolve; duplicates of
	// identities already stored are ignored.
	AddLinkedIdentities(ctx context.Context, requestID string, ids []lethe.Identity) error
	// DropIdentityValues deletes the sealed values of the request's
	// identities and keeps only their keyed hashes, and drops its
	// callback_url (pending status events keep their own sealed copy): the
	// minimisation step when a request closes. Dropping twice is harmless.
	DropIdentityValues(ctx context.Context, requestID string) error
	// CountRequestsByStatus feeds the requests-by-status metric.
	CountRequestsByStatus(ctx context.Context) (map[lethe.Status]int64, error)
}

// UpdateRequestStateParams is a compare-and-set of a request's (status,
// stage).
type UpdateRequestStateParams struct {
	ID string
	// From and FromStage are the statuses and stages the request may be
	// in; empty accepts any.
	From      []lethe.Status
	FromStage []lethe.Stage
	To        lethe.Status
	ToStage   lethe.Stage
	At        time.Time
	// Outcome, when set, is stored as the request's outcome.
	Outcome lethe.Outcome
	// Reach, when set, is stored as the request's reach.
	Reach *lethe.Reach
}

// Scope limits what a caller may see: ClientID set means only that client's
// requests; All (the admin) sees every request. The zero Scope sees nothing,
// so a forgotten scope fails closed.
type Scope struct {
	All      bool
	ClientID string
}

// Sees reports whether the scope may see a request of clientID ("" for the
// admin's requests), the rule GetRequest applies in SQL.
func (s Scope) Sees(clientID string) bool {
	return s.All || (s.ClientID != "" && s.ClientID == clientID)
}

// ListFilter selects a page of requests.
type ListFilter struct {
	Scope  Scope
	Status lethe.Status // "" for any
	Limit  int          // 1..1000; callers validate
	Cursor string       // opaque, from a previous page; "" for the first
	// Open keeps only open requests (received or running).
	Open bool
	// DueBefore, when not zero, keeps only requests due before it.
	DueBefore time.Time
}

// Tasks persists the per-target tasks of a request.
type Tasks interface {
	// CreateTasks inserts one pending task per target; existing tasks of
	// the request are left as they are (so a replayed step is harmless).
	CreateTasks(ctx context.Context, requestID string, targets []string, at time.Time) error
	// ListTasks returns a request's tasks ordered by target.
	ListTasks(ctx context.Context, requestID string) ([]lethe.Task, error)
	// StartTaskAttempt marks a non-terminal task running and increments
	// its attempts; it returns the task after the change, or with ok false
	// and the stored task when the task has already ended.
	StartTaskAttempt(ctx context.Context, requestID, target string, at time.Time) (t lethe.Task, ok bool, err error)
	// RecordTaskError keeps the last (redacted) error of a running task.
	RecordTaskError(ctx context.Context, requestID, target, msg string, at time.Time) error
	// FinishTask moves a non-terminal task to a terminal state with its
	// report and reports whether it did (false if it had already ended).
	FinishTask(ctx context.Context, p FinishTaskParams) (bool, error)
	// FailVerifiedTask moves a done task to failed with msg when verify
	// finds data left; false if the task was not done.
	FailVerifiedTask(ctx context.Context, requestID, target, msg string, at time.Time) (bool, error)
	// CountOpenTasks returns how many of the request's tasks have not ended.
	CountOpenTasks(ctx context.Context, requestID string) (int, error)
	// TaskTally returns what the task's final report is built from.
	TaskTally(ctx context.Context, requestID, target string) (TaskTally, error)
	// SetTaskPlan stores the connector's plan on a task that has none yet
	// and has not ended, and reports whether it did. The first plan is the
	// one kept: later ones no longer see what earlier attempts erased.
	SetTaskPlan(ctx context.Context, requestID, target string, plan lethe.Report, at time.Time) (bool, error)
	// AddTaskProgress adds one Erase attempt's report to the task's
	// progress (see AddReport), counts the attempt as recorded (an empty
	// report too) and returns the tally after it. On a task that has ended
	// it changes nothing and returns the stored tally.
	AddTaskProgress(ctx context.Context, requestID, target string, r lethe.Report, at time.Time) (TaskTally, error)
}

// FinishTaskParams ends one task.
type FinishTaskParams struct {
	RequestID string
	Target    string
	State     lethe.TaskState // terminal
	Report    lethe.Report
	LastError string // redacted; "" when it ended well
	At        time.Time
}

// TaskTally is the bookkeeping behind a task's final report: the plan taken
// before the first Erase attempt and the sum of every attempt's report.
type TaskTally struct {
	Planned  bool // whether Plan holds a stored plan
	Plan     lethe.Report
	Progress lethe.Report
	// Recorded counts the reports added to Progress. Fewer than the
	// task's attempts means an attempt's report was lost (a crash between
	// the target's commit and AddTaskProgress), so Progress may be short.
	Recorded int
}

// Audit appends to and reads the audit log.
type Audit interface {
	// AppendAudit stores e, filling PrevHash and Hash, and Seq once e is
	// in the database: at once on a Store; inside a Tx, possibly not
	// before the transaction commits (the SQL stores store a
	// transaction's events together), though ListAudit in the same
	// transaction sees it.
	AppendAudit(ctx context.Context, e *lethe.AuditEvent) error
	// ListAudit returns a request's events in order ("" for events not tied
	// to a request).
	ListAudit(ctx context.Context, requestID string) ([]lethe.AuditEvent, error)
}

// CredentialKind names a kind of client credential.
type CredentialKind string

const (
	// CredAPIKey is the s2s X-API-KEY; stored as a keyed hash.
	CredAPIKey CredentialKind = "api_key"
	// CredHMACSecret is the s2s shared secret; stored sealed because
	// verification needs the value.
	CredHMACSecret CredentialKind = "hmac_secret"
	// CredOAuthClientID is the connect client_id; stored as a keyed hash.
	CredOAuthClientID CredentialKind = "oauth_client_id"
	// CredOAuthSecret is the connect client_secret; stored as a keyed hash.
	CredOAuthSecret CredentialKind = "oauth_client_secret"
	// CredAgentVerifyKey is a DRP authorized agent's Ed25519 verify key.
	// It is public, but stored sealed like a secret: the seal binds it to
	// its client, so a key written into another row does not open.
	CredAgentVerifyKey CredentialKind = "drp_verify_key"
	// CredAgentToken is a DRP pairwise bearer token; stored as a keyed
	// hash.
	CredAgentToken CredentialKind = "drp_agent_token"
)

// Credential is one stored credential of a client. Exactly one of Hash
// (keyed hash, for lookup and constant-time comparison) and Secret (the
// plaintext, opened from its sealed form) is set, depending on Kind.
type Credential struct {
	ID        int64
	ClientID  string
	Kind      CredentialKind
	Hash      string
	Secret    string
	CreatedAt time.Time
	ExpiresAt time.Time // zero: no expiry; set on rotation for the overlap
}

// Token is an opaque bearer token, stored only as a keyed hash.
type Token struct {
	Hash      string
	ClientID  string
	Scope     string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Clients persists clients, credentials and access tokens.
type Clients interface {
	// CreateClient inserts c and its credentials. ErrConflict if the name
	// (or a credential hash) is taken.
	CreateClient(ctx context.Context, c *lethe.Client, creds []Credential) error
	GetClient(ctx context.Context, id string) (*lethe.Client, error)
	GetClientByName(ctx context.Context, name string) (*lethe.Client, error)
	ListClients(ctx context.Context) ([]*lethe.Client, error)
	// SetClientDisabled disables or enables the client. Disabling deletes
	// its access tokens: they stay dead when the client is enabled again.
	SetClientDisabled(ctx context.Context, id string, disabled bool) error
	// AddCredential adds a credential to a client.
	AddCredential(ctx context.Context, c Credential) error
	// ExpireCredentials makes the client's credentials of kind expire at
	// at, unless they expire earlier already (rotation's overlap).
	ExpireCredentials(ctx context.Context, clientID string, kind CredentialKind, at time.Time) error
	// FindCredential returns the credential of kind with hash, unexpired at
	// now, whose client is enabled; ErrNotFound otherwise.
	FindCredential(ctx context.Context, kind CredentialKind, hash string, now time.Time) (Credential, error)
	// ClientCredentials returns the client's credentials of kind that are
	// unexpired at now (sealed ones opened).
	ClientCredentials(ctx context.Context, clientID string, kind CredentialKind, now time.Time) ([]Credential, error)
	CreateToken(ctx context.Context, t Token) error
	// ExpireTokens makes the client's access tokens expire at at, unless
	// they expire earlier already (a rotation's overlap ends them).
	ExpireTokens(ctx context.Context, clientID string, at time.Time) error
	// FindToken returns the unexpired token with hash whose client is
	// enabled; ErrNotFound otherwise.
	FindToken(ctx context.Context, hash string, now time.Time) (Token, error)
	// ClientAuthVersion returns a value that changes whenever the client's
	// credentials could have: one is added (every rotation adds), one is
	// given an expiry, or the client is disabled or enabled. ErrNotFound
	// for no such client. It lets a process trust credentials it read
	// earlier after one small read instead of reading them again.
	ClientAuthVersion(ctx context.Context, clientID string) (string, error)
}

// RateLimits keeps sliding-window limits with a block period, shared by
// every lethe process on the same database.
type RateLimits interface {
	// TakeRateLimit counts one request for p.Key at p.Now. A request is
	// allowed while fewer than p.Limit requests were allowed in the
	// p.Window before it (a sliding window: the limit holds over every
	// window, not only over fixed ones). The request that goes over blocks
	// the key for p.Block from that moment; while blocked, requests are
	// refused and do not extend the block. With no Block, requests are
	// refused until the oldest counted one leaves the window. It returns
	// how many tokens it granted (0: refused; 1: this request; more: this
	// request and a lease, see p.Want) and, when refused, how long until
	// a request would be allowed.
	//
	// A lease's tokens are counted from their grant as requests made at
	// p.LeaseUntil, the latest instant the process may spend them, so every
	// request a lease lets through is counted for a whole window around
	// its real time whichever process asks next. p.Settle, applied first,
	// ends a lease the process took before: its unspent tokens are given
	// back and the spent ones re-dated to the last request they let
	// through.
	TakeRateLimit(ctx context.Context, p TakeRateLimitParams) (granted int, retryAfter time.Duration, err error)
}

// TakeRateLimitParams are the arguments of RateLimits.TakeRateLimit.
type TakeRateLimitParams struct {
	Key    string
	Limit  int           // at least 1
	Window time.Duration // positive
	Block  time.Duration // zero: no block, refused until the window allows
	Now    time.Time
	// Want is how many tokens to take, this request's included (0 counts
	// as 1). Tokens beyond this request's are granted only while the key
	// is below half its limit, and never past it: near the limit every
	// request is decided on its own, so a lease left unspent in one
	// process cannot have another refused (and blocked) early.
	Want int
	// LeaseUntil (after Now) and Lease (an id unique to the lease) are
	// required when Want > 1.
	LeaseUntil time.Time
	Lease      string
	Settle     *RateLimitSettle
}

// RateLimitSettle ends a lease: Spent of its extra tokens let requests
// through, the last at LastUse.
type RateLimitSettle struct {
	Lease   string
	Spent   int
	LastUse time.Time
}

// ProfileKey is a signing key an intake profile generated for itself.
// Private is the PKCS #8 DER, sealed at rest and opened on read.
type ProfileKey struct {
	Name        string
	Private     []byte
	Certificate []byte // X.509 DER
	CreatedAt   time.Time
}

// ProfileKeys keeps the signing keys intake profiles generate (OpenDSR
// signs callbacks and answers), so every process sharing the database
// signs with the same key.
type ProfileKeys interface {
	// GetProfileKey returns the key named name, or ErrNotFound.
	GetProfileKey(ctx context.Context, name string) (ProfileKey, error)
	// CreateProfileKey stores k; ErrConflict when its name is taken
	// (another process generated one first).
	CreateProfileKey(ctx context.Context, k ProfileKey) error
}
