package sqlstore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

const requestCols = `id, client_id, external_id, regulation, status, stage, subject_key,
	idempotency_key, callback_url, received_at, due_at, started_at, completed_at, updated_at,
	outcome, reach, callback_format`

type scanner interface{ Scan(dest ...any) error }

func (q *queries) scanRequest(s scanner) (*lethe.Request, error) {
	r := &lethe.Request{}
	var reach string
	err := s.Scan(&r.ID, &r.ClientID, &r.ExternalID, &r.Regulation, &r.Status, &r.Stage, &r.SubjectKey,
		&r.IdempotencyKey, &r.CallbackURL, dbTime{&r.ReceivedAt}, dbTime{&r.DueAt}, dbTime{&r.StartedAt},
		dbTime{&r.CompletedAt}, dbTime{&r.UpdatedAt}, &r.Outcome, &reach, &r.CallbackFormat)
	if err != nil {
		return nil, err
	}
	if r.CallbackURL, err = q.openURL("requests", r.ID, r.CallbackURL); err != nil {
		return nil, err
	}
	q.noteCallbackURL(r.ID, r.CallbackURL)
	if reach != "" {
		r.Reach = &lethe.Reach{}
		if err := json.Unmarshal([]byte(reach), r.Reach); err != nil {
			return nil, fmt.Errorf("request %s: reach: %w", r.ID, err)
		}
	}
	return r, nil
}

// encodeReach is the stored form of a request's reach: "" for none.
func encodeReach(r *lethe.Reach) (string, error) {
	if r == nil {
		return "", nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("encode reach: %w", err)
	}
	return string(b), nil
}

func (q *queries) scanRequestRows(rows Rows) (*lethe.Request, error) { return q.scanRequest(rows) }

// identityAAD binds a sealed identity to its request and type, so a value
// copied into another row does not open.
func identityAAD(requestID string, t lethe.IdentityType) []byte {
	return []byte("lethe/request_identities\x00" + requestID + "\x00" + string(t))
}

func (q *queries) identityHash(id lethe.Identity) string {
	return q.kr.Hash("identity", string(id.Type)+":"+id.Value)
}

// CreateRequest implements store.Requests. It normalises r's times in place
// (UTC, microseconds) so r equals what a later read returns.
func (q *queries) CreateRequest(ctx context.Context, r *lethe.Request) error {
	if r.ID == "" || !r.Status.Valid() || r.Stage == "" {
		return errors.New("create request: ID, a valid Status and Stage are required")
	}
	if r.ReceivedAt.IsZero() || r.DueAt.IsZero() || r.UpdatedAt.IsZero() {
		return errors.New("create request: ReceivedAt, DueAt and UpdatedAt are required")
	}
	for _, t := range []*time.Time{&r.ReceivedAt, &r.DueAt, &r.StartedAt, &r.CompletedAt, &r.UpdatedAt} {
		*t = normTime(*t)
	}
	err := q.atomic(ctx, func(q *queries) error {
		// DO NOTHING rather than a failing insert: on postgres a failed
		// statement aborts the whole transaction, and a caller that gets
		// ErrConflict inside InTx may want to go on (read the first request).
		var id string
		reach, err := encodeReach(r.Reach)
		if err != nil {
			return err
		}
		insert := `INSERT INTO requests (` + requestCols + `)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT DO NOTHING RETURNING id`
		args := []any{r.ID, r.ClientID, r.ExternalID, r.Regulation, r.Status, r.Stage, r.SubjectKey,
			r.IdempotencyKey, q.sealURL("requests", r.ID, r.CallbackURL), q.ts(r.ReceivedAt), q.ts(r.DueAt), q.ts(r.StartedAt),
			q.ts(r.CompletedAt), q.ts(r.UpdatedAt), r.Outcome, reach, r.CallbackFormat}
		withIdentities := q.d.WritableCTE && len(r.Identities) > 0 && len(r.Identities) <= identityBatch
		if withIdentities {
			// One statement: the identities are inserted only if the
			// request was (ON CONFLICT DO NOTHING returns no row
			// otherwise), and their foreign key is checked at the end of
			// the statement, where the request's row exists.
			var values strings.Builder
			for i, id := range r.Identities {
				if id.Type == "" || id.Value == "" {
					return fmt.Errorf("identity %s: type and value are required", id)
				}
				if i > 0 {
					values.WriteString(", ")
				}
				fmt.Fprintf(&values, "(%d, CAST(? AS text), CAST(? AS bytea), CAST(? AS text))", i)
				args = append(args, id.Type, q.kr.Seal([]byte(id.Value), identityAAD(r.ID, id.Type)), q.identityHash(id))
			}
			insert = `WITH r AS (` + insert + `),
				i AS (INSERT INTO request_identities (request_id, type, value_sealed, value_hash, source)
					SELECT r.id, v.type, v.value_sealed, v.value_hash, 'given'
					FROM r, (VALUES ` + values.String() + `) AS v (n, type, value_sealed, value_hash)
					ORDER BY v.n` + identityConflict + `)
				SELECT id FROM r`
		}
		err = q.queryRow(ctx, insert, args...).Scan(&id)
		if err != nil {
			if errors.Is(notFound(err), store.ErrNotFound) {
				return store.ErrConflict
			}
			return err
		}
		if q.inTx {
			// A request created in this transaction has an empty audit
			// chain that nobody else can see, let alone append to, until
			// it commits: its first append needs neither the chain's lock
			// nor a read of its head (LockChains).
			if q.chains == nil {
				q.chains = map[string]string{}
			}
			q.chains[r.ID] = ""
		}
		q.hold(r.ID)
		q.noteCallbackURL(r.ID, r.CallbackURL)
		if withIdentities {
			return nil
		}
		return q.insertIdentities(ctx, owned(r.ID, r.Identities), "given")
	})
	if err != nil {
		return fmt.Errorf("create request: %w", err)
	}
	return nil
}

// identityBatch identities go in one INSERT: 5 parameters each, well
// under every database's limit.
const identityBatch = 200

const identityInsert = `INSERT INTO request_identities (request_id, type, value_sealed, value_hash, source) VALUES `

// identityConflict skips an identity the request already has, or one
// repeated in the same INSERT.
const identityConflict = ` ON CONFLICT (request_id, value_hash) DO NOTHING`

// identityValues is the VALUES list of ids, in order (RequestIdentities
// lists them in insertion order), and its arguments.
func (q *queries) identityValues(rows []ownedIdentity, source string) (string, []any, error) {
	var sb strings.Builder
	args := make([]any, 0, 5*len(rows))
	for i, row := range rows {
		id := row.id
		if id.Type == "" || id.Value == "" {
			return "", nil, fmt.Errorf("identity %s: type and value are required", id)
		}
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("(?, ?, ?, ?, ?)")
		sealed := q.kr.Seal([]byte(id.Value), identityAAD(row.requestID, id.Type))
		args = append(args, row.requestID, id.Type, sealed, q.identityHash(id), source)
	}
	return sb.String(), args, nil
}

// ownedIdentity is an identity with the request it belongs to.
type ownedIdentity struct {
	requestID string
	id        lethe.Identity
}

func owned(requestID string, ids []lethe.Identity) []ownedIdentity {
	out := make([]ownedIdentity, len(ids))
	for i, id := range ids {
		out[i] = ownedIdentity{requestID, id}
	}
	return out
}

// insertIdentities stores rows, of one request or several, in one
// statement per identityBatch.
func (q *queries) insertIdentities(ctx context.Context, rows []ownedIdentity, source string) error {
	for batch := range slices.Chunk(rows, identityBatch) {
		values, args, err := q.identityValues(batch, source)
		if err != nil {
			return err
		}
		if _, err := q.exec(ctx, identityInsert+values+identityConflict, args...); err != nil {
			return fmt.Errorf("insert identities: %w", err)
		}
	}
	return nil
}

// noteCallbackURL records, inside a Tx, that request id has no callback
// URL when u, just read or written, is empty: a request gets its callback
// URL when it is created or never, and loses it only to minimisation, so
// an empty one stays empty (DropIdentityValues need not clear it).
func (q *queries) noteCallbackURL(id, u string) {
	if !q.inTx || u != "" {
		return
	}
	if q.noCallback == nil {
		q.noCallback = map[string]bool{}
	}
	q.noCallback[id] = true
}

// scopeWhere returns the condition limiting requests to scope, and false
// when the scope can see nothing at all.
func scopeWhere(s store.Scope) (cond string, args []any, ok bool) {
	switch {
	case s.All:
		return "", nil, true
	case s.ClientID != "":
		return "client_id = ?", []any{s.ClientID}, true
	default:
		return "", nil, false
	}
}

// GetRequest implements store.Requests.
func (q *queries) GetRequest(ctx context.Context, id string, scope store.Scope) (*lethe.Request, error) {
	cond, args, ok := scopeWhere(scope)
	if !ok {
		return nil, fmt.Errorf("get request: %w", store.ErrNotFound)
	}
	query := `SELECT ` + requestCols + ` FROM requests WHERE id = ?`
	if cond != "" {
		query += " AND " + cond
	}
	r, err := q.scanRequest(q.queryRow(ctx, query, append([]any{id}, args...)...))
	if err != nil {
		return nil, fmt.Errorf("get request: %w", notFound(err))
	}
	if r.Tasks, err = q.ListTasks(ctx, id); err != nil {
		return nil, fmt.Errorf("get request: %w", err)
	}
	return r, nil
}

// ReadRequest implements store.Requests.
func (q *queries) ReadRequest(ctx context.Context, id string) (*lethe.Request, error) {
	r, err := q.scanRequest(q.queryRow(ctx, `SELECT `+requestCols+` FROM requests WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("read request: %w", notFound(err))
	}
	return r, nil
}

// LockRequest implements store.Requests.
func (q *queries) LockRequest(ctx context.Context, id string) (*lethe.Request, error) {
	if !q.inTx {
		// Outside a transaction the lock would end with the statement;
		// the caller's read-modify-write would not be protected.
		return nil, errors.New("lock request: only inside InTx")
	}
	r, err := q.scanRequest(q.queryRow(ctx, `SELECT `+requestCols+` FROM requests WHERE id = ?`+q.d.ForUpdate, id))
	if err != nil {
		return nil, fmt.Errorf("lock request: %w", notFound(err))
	}
	q.hold(id)
	return r, nil
}

// cursorPrefix versions the cursor format so it can change without old
// cursors being misread.
const cursorPrefix = "1:"

func encodeCursor(id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + id))
}

func decodeCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	id, ok := strings.CutPrefix(string(b), cursorPrefix)
	if err != nil || !ok || id == "" || len(id) > 128 || !utf8.ValidString(id) {
		return "", lethe.Errorf(lethe.EINVALID, "cursor is not valid: pass the cursor of a previous page unchanged")
	}
	return id, nil
}

// ListRequests implements store.Requests.
func (q *queries) ListRequests(ctx context.Context, f store.ListFilter) ([]*lethe.Request, string, error) {
	limit := f.Limit
	if limit < 1 || limit > 1000 {
		limit = 1000
	}
	cond, args, ok := scopeWhere(f.Scope)
	if !ok {
		return nil, "", nil
	}
	var where []string
	if cond != "" {
		where = append(where, cond)
	}
	if f.Status != "" {
		where = append(where, "status = ?")
		args = append(args, f.Status)
	}
	if f.Open {
		where = append(where, openStatuses)
	}
	if !f.DueBefore.IsZero() {
		where = append(where, "due_at < ?")
		args = append(args, q.ts(f.DueBefore))
	}
	if f.Cursor != "" {
		after, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("list requests: %w", err)
		}
		// Ids are UUIDv7: ordering them orders by creation time, and they
		// are unique, so "after the last id" never skips or repeats a row.
		where = append(where, "id < ?")
		args = append(args, after)
	}
	query := `SELECT ` + requestCols + ` FROM requests`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY id DESC LIMIT ?"
	args = append(args, limit+1)
	rows, err := q.query(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list requests: %w", err)
	}
	out, err := collect(rows, q.scanRequestRows)
	if err != nil {
		return nil, "", fmt.Errorf("list requests: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = encodeCursor(out[limit-1].ID)
	}
	return out, next, nil
}

// FindRequestByIdempotencyKey implements store.Requests.
func (q *queries) FindRequestByIdempotencyKey(ctx context.Context, clientID, key string) (*lethe.Request, error) {
	if key == "" {
		return nil, fmt.Errorf("find request by idempotency key: %w", store.ErrNotFound)
	}
	// The index on (client_id, idempotency_key) is partial (keys <> ''):
	// the planner uses it only when the query states that condition
	// itself, as it cannot see that the bound key is never empty. Without
	// it, every lookup scans all the client's requests.
	r, err := q.scanRequest(q.queryRow(ctx, `SELECT `+requestCols+` FROM requests
		WHERE client_id = ? AND idempotency_key = ? AND idempotency_key <> ''`, clientID, key))
	if err != nil {
		return nil, fmt.Errorf("find request by idempotency key: %w", notFound(err))
	}
	return r, nil
}

// FindOpenRequest implements store.Requests.
func (q *queries) FindOpenRequest(ctx context.Context, clientID, subjectKey string) (*lethe.Request, error) {
	r, err := q.scanRequest(q.queryRow(ctx, `SELECT `+requestCols+` FROM requests
		WHERE client_id = ? AND subject_key = ? AND `+openStatuses+`
		ORDER BY id DESC LIMIT 1`, clientID, subjectKey))
	if err != nil {
		return nil, fmt.Errorf("find open request: %w", notFound(err))
	}
	return r, nil
}

// requestRows bounds the rows of one multi-row insert of requests (17
// parameters each), well under every database's parameter limit.
const requestRows = 200

// CreateNewRequests stores, in one statement per requestRows, every one of
// rs that no unique index refuses (an open request of the same client and
// subject, a request of the same client and idempotency key, the same id),
// with its given identities, and reports which were stored. Rows are
// inserted in the order given, so one of rs refused for another of rs is
// refused for the earlier one. A refused request is not an error: the
// transaction stays usable, to read what refused it (RequestsInTheWay).
// Only intake's group commit (a transaction) calls it; like CreateRequest,
// it normalises the requests' times in place.
func (q *queries) CreateNewRequests(ctx context.Context, rs []*lethe.Request) ([]bool, error) {
	stored := make([]bool, len(rs))
	index := make(map[string]int, len(rs))
	for i, r := range rs {
		if r.ID == "" || !r.Status.Valid() || r.Stage == "" {
			return nil, errors.New("create requests: ID, a valid Status and Stage are required")
		}
		if r.ReceivedAt.IsZero() || r.DueAt.IsZero() || r.UpdatedAt.IsZero() {
			return nil, errors.New("create requests: ReceivedAt, DueAt and UpdatedAt are required")
		}
		if _, dup := index[r.ID]; dup {
			return nil, errors.New("create requests: an id is given twice")
		}
		index[r.ID] = i
		for _, t := range []*time.Time{&r.ReceivedAt, &r.DueAt, &r.StartedAt, &r.CompletedAt, &r.UpdatedAt} {
			*t = normTime(*t)
		}
	}
	err := q.atomic(ctx, func(q *queries) error {
		for chunk := range slices.Chunk(rs, requestRows) {
			var sb strings.Builder
			sb.WriteString(`INSERT INTO requests (` + requestCols + `) VALUES `)
			args := make([]any, 0, len(chunk)*17)
			for j, r := range chunk {
				reach, err := encodeReach(r.Reach)
				if err != nil {
					return err
				}
				if j > 0 {
					sb.WriteString(", ")
				}
				sb.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
				args = append(args, r.ID, r.ClientID, r.ExternalID, r.Regulation, r.Status, r.Stage, r.SubjectKey,
					r.IdempotencyKey, q.sealURL("requests", r.ID, r.CallbackURL), q.ts(r.ReceivedAt), q.ts(r.DueAt), q.ts(r.StartedAt),
					q.ts(r.CompletedAt), q.ts(r.UpdatedAt), r.Outcome, reach, r.CallbackFormat)
			}
			// DO NOTHING, as in CreateRequest: a refused row must not
			// abort the transaction (postgres) or the other rows.
			sb.WriteString(` ON CONFLICT DO NOTHING RETURNING id`)
			rows, err := q.query(ctx, sb.String(), args...)
			if err != nil {
				return err
			}
			ids, err := collect(rows, func(rows Rows) (string, error) {
				var id string
				return id, rows.Scan(&id)
			})
			if err != nil {
				return err
			}
			for _, id := range ids {
				i, ok := index[id]
				if !ok {
					return fmt.Errorf("insert returned an id not given: %s", id)
				}
				stored[i] = true
			}
		}
		var ids []ownedIdentity
		for i, r := range rs {
			if !stored[i] {
				continue
			}
			if q.inTx {
				// As in CreateRequest: the new request's empty audit
				// chain is nobody else's until the commit.
				if q.chains == nil {
					q.chains = map[string]string{}
				}
				q.chains[r.ID] = ""
			}
			q.hold(r.ID)
			ids = append(ids, owned(r.ID, r.Identities)...)
		}
		return q.insertIdentities(ctx, ids, "given")
	})
	if err != nil {
		return nil, fmt.Errorf("create requests: %w", err)
	}
	return stored, nil
}

// RequestsInTheWay returns, in one statement, every stored request that a
// unique index would set against one of rs: the open requests of the same
// client and subject, and the requests of the same client and idempotency
// key. Only intake's group commit calls it, for the requests
// CreateNewRequests refused.
func (q *queries) RequestsInTheWay(ctx context.Context, rs []*lethe.Request) ([]*lethe.Request, error) {
	type keys struct{ subjects, idem []any }
	var clients []string
	by := map[string]*keys{}
	for _, r := range rs {
		k := by[r.ClientID]
		if k == nil {
			k = &keys{}
			by[r.ClientID] = k
			clients = append(clients, r.ClientID)
		}
		k.subjects = append(k.subjects, r.SubjectKey)
		if r.IdempotencyKey != "" {
			k.idem = append(k.idem, r.IdempotencyKey)
		}
	}
	if len(clients) == 0 {
		return nil, nil
	}
	// One arm per client and index, each of the form the partial unique
	// indexes serve (see FindOpenRequest, FindRequestByIdempotencyKey);
	// a request found by both arms comes twice.
	var (
		arms []string
		args []any
	)
	for _, c := range clients {
		k := by[c]
		arms = append(arms, `SELECT `+requestCols+` FROM requests
			WHERE client_id = ? AND subject_key IN (`+placeholders(len(k.subjects))+`) AND `+openStatuses)
		args = append(append(args, c), k.subjects...)
		if len(k.idem) > 0 {
			arms = append(arms, `SELECT `+requestCols+` FROM requests
				WHERE client_id = ? AND idempotency_key IN (`+placeholders(len(k.idem))+`) AND idempotency_key <> ''`)
			args = append(append(args, c), k.idem...)
		}
	}
	rows, err := q.query(ctx, strings.Join(arms, " UNION ALL "), args...)
	if err != nil {
		return nil, fmt.Errorf("requests in the way: %w", err)
	}
	out, err := collect(rows, q.scanRequestRows)
	if err != nil {
		return nil, fmt.Errorf("requests in the way: %w", err)
	}
	return out, nil
}

// subjectBatch keeps IN lists well under every database's parameter limit.
const subjectBatch = 500

// LatestRequestsBySubject implements store.Requests.
func (q *queries) LatestRequestsBySubject(ctx context.Context, clientID string, subjectKeys []string) (map[string]*lethe.Request, error) {
	keys := slices.Clone(subjectKeys)
	slices.Sort(keys)
	keys = slices.Compact(keys)
	out := make(map[string]*lethe.Request)
	for batch := range slices.Chunk(keys, subjectBatch) {
		args := []any{clientID}
		for _, k := range batch {
			args = append(args, k)
		}
		rows, err := q.query(ctx, `SELECT `+requestCols+` FROM requests
			WHERE client_id = ? AND subject_key IN (`+placeholders(len(batch))+`)
			ORDER BY id DESC`, args...)
		if err != nil {
			return nil, fmt.Errorf("latest requests by subject: %w", err)
		}
		rs, err := collect(rows, q.scanRequestRows)
		if err != nil {
			return nil, fmt.Errorf("latest requests by subject: %w", err)
		}
		for _, r := range rs {
			if _, seen := out[r.SubjectKey]; !seen {
				out[r.SubjectKey] = r
			}
		}
	}
	return out, nil
}

// UpdateRequestState implements store.Requests.
func (q *queries) UpdateRequestState(ctx context.Context, p store.UpdateRequestStateParams) (bool, error) {
	id, from, fromStage, to, toStage, at := p.ID, p.From, p.FromStage, p.To, p.ToStage, p.At
	if !to.Valid() || toStage == "" {
		return false, fmt.Errorf("update request state: invalid target state %q/%q", to, toStage)
	}
	set := []string{"status = ?", "stage = ?", "updated_at = ?"}
	args := []any{to, toStage, q.ts(at)}
	if to == lethe.StatusRunning {
		// A step replayed after a crash must not move the start forward.
		set = append(set, "started_at = COALESCE(started_at, ?)")
		args = append(args, q.ts(at))
	}
	if to.Terminal() {
		set = append(set, "completed_at = ?")
		args = append(args, q.ts(at))
	}
	if p.Outcome != "" {
		set = append(set, "outcome = ?")
		args = append(args, p.Outcome)
	}
	if p.Reach != nil {
		reach, err := encodeReach(p.Reach)
		if err != nil {
			return false, fmt.Errorf("update request state: %w", err)
		}
		set = append(set, "reach = ?")
		args = append(args, reach)
	}
	query := "UPDATE requests SET " + strings.Join(set, ", ") + " WHERE id = ?"
	args = append(args, id)
	if len(from) > 0 {
		query += " AND status IN (" + placeholders(len(from)) + ")"
		for _, s := range from {
			args = append(args, s)
		}
	}
	if len(fromStage) > 0 {
		query += " AND stage IN (" + placeholders(len(fromStage)) + ")"
		for _, s := range fromStage {
			args = append(args, s)
		}
	}
	n, err := q.exec(ctx, query, args...)
	if err != nil {
		return false, fmt.Errorf("update request state: %w", err)
	}
	if n == 1 {
		q.hold(id)
	}
	return n == 1, nil
}

// RequestIdentities implements store.Requests.
func (q *queries) RequestIdentities(ctx context.Context, requestID string) ([]lethe.Identity, error) {
	rows, err := q.query(ctx, `SELECT type, value_sealed FROM request_identities
		WHERE request_id = ? AND value_sealed IS NOT NULL
		ORDER BY CASE source WHEN 'given' THEN 0 ELSE 1 END, id`, requestID)
	if err != nil {
		return nil, fmt.Errorf("request identities: %w", err)
	}
	ids, err := collect(rows, func(rows Rows) (lethe.Identity, error) {
		var id lethe.Identity
		var sealed []byte
		if err := rows.Scan(&id.Type, &sealed); err != nil {
			return id, err
		}
		v, err := q.kr.Open(sealed, identityAAD(requestID, id.Type))
		if err != nil {
			return id, fmt.Errorf("open %s identity: %w", id.Type, err)
		}
		id.Value = string(v)
		return id, nil
	})
	if err != nil {
		return nil, fmt.Errorf("request identities: %w", err)
	}
	return ids, nil
}

// AddLinkedIdentities implements store.Requests.
func (q *queries) AddLinkedIdentities(ctx context.Context, requestID string, ids []lethe.Identity) error {
	err := q.atomic(ctx, func(q *queries) error {
		if !q.held[requestID] {
			var one int
			if err := q.queryRow(ctx, `SELECT 1 FROM requests WHERE id = ?`, requestID).Scan(&one); err != nil {
				return notFound(err)
			}
		}
		return q.insertIdentities(ctx, owned(requestID, ids), "linked")
	})
	if err != nil {
		return fmt.Errorf("add linked identities: %w", err)
	}
	return nil
}

// DropIdentityValues implements store.Requests.
func (q *queries) DropIdentityValues(ctx context.Context, requestID string) error {
	if _, err := q.exec(ctx, `UPDATE request_identities SET value_sealed = NULL
		WHERE request_id = ? AND value_sealed IS NOT NULL`, requestID); err != nil {
		return fmt.Errorf("drop identity values: %w", err)
	}
	// The callback_url goes with them: the request's last status event,
	// stored before minimisation, holds its own sealed copy until it is
	// delivered or abandoned. Known to be empty, there is nothing to clear.
	if q.noCallback[requestID] {
		return nil
	}
	if _, err := q.exec(ctx, `UPDATE requests SET callback_url = '' WHERE id = ? AND callback_url <> ''`, requestID); err != nil {
		return fmt.Errorf("drop callback url: %w", err)
	}
	return nil
}

// CountRequestsByStatus implements store.Requests.
func (q *queries) CountRequestsByStatus(ctx context.Context) (map[lethe.Status]int64, error) {
	rows, err := q.query(ctx, `SELECT status, count(*) FROM requests GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("count requests by status: %w", err)
	}
	type pair struct {
		s lethe.Status
		n int64
	}
	ps, err := collect(rows, func(rows Rows) (pair, error) {
		var p pair
		err := rows.Scan(&p.s, &p.n)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("count requests by status: %w", err)
	}
	out := make(map[lethe.Status]int64, len(ps))
	for _, p := range ps {
		out[p.s] = p.n
	}
	return out, nil
}
