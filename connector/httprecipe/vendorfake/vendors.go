package vendorfake

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Credentials the fakes accept.
const (
	Token        = "vendor-token-abcdefghij"
	APIKey       = "vendor-api-key-abcdefghij"
	SecretKey    = "vendor-secret-key-abcdefghij"
	ClientID     = "vendor-client-id"
	ClientSecret = "vendor-client-secret-abcdefghij"
	Agent        = "agent@company.example"
	ProjectToken = "mixpanel-project-token"
	Username     = "controller"
	Password     = "vendor-password-abcdefghij"
)

var secrets = map[string]string{"token": Token, "api_key": APIKey}

func unauthorized(w http.ResponseWriter, shape map[string]any) {
	writeJSON(w, http.StatusUnauthorized, shape)
}

// Segment is the Public API's workspace regulations
// (docs.segmentapis.com, Deletion and Suppression): POST /regulations with
// a bearer token, {regulationType, subjectType, subjectIds (at most 5000)}
// answered {"data":{"regulateId"}}; GET /regulations/{id} answers
// data.regulation.overallStatus INITIALIZED, RUNNING, then FINISHED,
// FAILED or PARTIAL_SUCCESS.
func Segment(tb testing.TB) *Fake {
	return newFake(tb, secrets, func(f *Fake, mux *http.ServeMux) {
		errs := func(w http.ResponseWriter, status int, msg string) {
			writeJSON(w, status, map[string]any{"errors": []map[string]string{{"type": "error", "message": msg}}})
		}
		mux.HandleFunc("POST /regulations", func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if !f.bearerOK(r, "token") {
				errs(w, http.StatusUnauthorized, "Unauthorized")
				return
			}
			var b struct {
				RegulationType string   `json:"regulationType"`
				SubjectType    string   `json:"subjectType"`
				SubjectIDs     []string `json:"subjectIds"`
			}
			if err := decode(r, &b); err != nil || len(b.SubjectIDs) == 0 || len(b.SubjectIDs) > 5000 ||
				!in(b.RegulationType, []string{"SUPPRESS_WITH_DELETE", "DELETE_ONLY", "SUPPRESS_ONLY", "DELETE_INTERNAL", "UNSUPPRESS"}) ||
				!in(b.SubjectType, []string{"USER_ID", "OBJECT_ID"}) {
				errs(w, http.StatusBadRequest, "Invalid request body")
				return
			}
			if f.failing() {
				errs(w, http.StatusUnprocessableEntity, "subjectIds contains an invalid id: "+b.SubjectIDs[0])
				return
			}
			f.batches = append(f.batches, len(b.SubjectIDs))
			j := f.newJob("reg", f.find(func(p *Person) bool { return in(p.UserID, b.SubjectIDs) }))
			writeJSON(w, http.StatusOK, map[string]any{"data": map[string]string{"regulateId": j.id}})
		})
		mux.HandleFunc("GET /regulations/{id}", func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if !f.bearerOK(r, "token") {
				errs(w, http.StatusUnauthorized, "Unauthorized")
				return
			}
			j := f.jobs[r.PathValue("id")]
			if j == nil {
				errs(w, http.StatusNotFound, "Regulation not found")
				return
			}
			st := map[string]string{"pending": "RUNNING", "done": "FINISHED", "failed": "FAILED", "partial": "PARTIAL_SUCCESS"}[f.poll(j)]
			if j.polls == 1 && st == "RUNNING" {
				st = "INITIALIZED"
			}
			writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"regulation": map[string]any{
				"id": j.id, "workspaceId": "ws-1", "overallStatus": st, "createdAt": "2026-12-07T12:00:00Z",
			}}})
		})
	})
}

// Braze is POST /users/delete (braze.com/docs/api/endpoints/user_data/
// post_user_delete): a bearer REST API key, one of external_ids,
// email_addresses or phone_numbers (at most 50), answered 201 {"deleted":
// n, "message": "success"}.
func Braze(tb testing.TB) *Fake {
	return newFake(tb, secrets, func(f *Fake, mux *http.ServeMux) {
		mux.HandleFunc("POST /users/delete", func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if !f.bearerOK(r, "api_key") {
				unauthorized(w, map[string]any{"message": "Invalid API key: " + strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")})
				return
			}
			var b map[string][]string
			if err := decode(r, &b); err != nil || len(b) != 1 {
				writeJSON(w, http.StatusBadRequest, map[string]any{"message": "Only one of external_ids, user_aliases, braze_ids, email_addresses, or phone_numbers can be included"})
				return
			}
			var field string
			var ids []string
			for k, v := range b {
				field, ids = k, v
			}
			f.batches = append(f.batches, len(ids))
			if len(ids) == 0 || len(ids) > 50 {
				writeJSON(w, http.StatusBadRequest, map[string]any{"message": "Up to 50 identifiers can be included in a single request"})
				return
			}
			if f.failing() {
				writeJSON(w, http.StatusBadRequest, map[string]any{"message": "Invalid " + field + ": " + strings.Join(ids, ", ")})
				return
			}
			var match func(p *Person) bool
			switch field {
			case "external_ids":
				match = func(p *Person) bool { return in(p.UserID, ids) }
			case "email_addresses":
				match = func(p *Person) bool { return in(p.Email, ids) }
			case "phone_numbers":
				match = func(p *Person) bool { return in(p.Phone, ids) }
			default:
				writeJSON(w, http.StatusBadRequest, map[string]any{"message": "unsupported identifier " + field})
				return
			}
			ps := f.find(match)
			for _, p := range ps {
				p.State = "gone"
			}
			writeJSON(w, http.StatusCreated, map[string]any{"deleted": len(ps), "message": "success"})
		})
	})
}

// Amplitude is the User Privacy API v1 (amplitude.com/docs/apis/analytics/
// user-privacy): basic auth with the API and secret keys; POST
// /api/2/deletions/users {user_ids (at most 100), requester,
// ignore_invalid_ids} answered with the day's jobs; GET
// /api/2/deletions/users?start_day&end_day lists jobs whose status goes
// staging, submitted, done.
func Amplitude(tb testing.TB) *Fake {
	return newFake(tb, secrets, func(f *Fake, mux *http.ServeMux) {
		// One job per day in this fake, so each day names one job.
		day := func(n int) string {
			return time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC).AddDate(0, 0, n).Format(time.DateOnly)
		}
		jobJSON := func(j *job, status string) map[string]any {
			ids := []map[string]any{}
			for _, p := range j.people {
				ids = append(ids, map[string]any{"amplitude_id": p.ID, "requester": "lethe", "requested_on_day": "2026-12-07"})
			}
			return map[string]any{"day": j.id, "status": status, "amplitude_ids": ids, "app": 12345}
		}
		mux.HandleFunc("POST /api/2/deletions/users", func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if !f.basicOK(r, APIKey, SecretKey) {
				unauthorized(w, map[string]any{"error": "Invalid API key"})
				return
			}
			var b struct {
				UserIDs          []string `json:"user_ids"`
				AmplitudeIDs     []int64  `json:"amplitude_ids"`
				Requester        string   `json:"requester"`
				IgnoreInvalidIDs bool     `json:"ignore_invalid_ids"`
				DeleteFromOrg    bool     `json:"delete_from_org"`
			}
			if err := decode(r, &b); err != nil || len(b.UserIDs)+len(b.AmplitudeIDs) == 0 || len(b.UserIDs) > 100 {
				writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid request"})
				return
			}
			ps := f.find(func(p *Person) bool { return in(p.UserID, b.UserIDs) })
			if (len(ps) < len(b.UserIDs) && !b.IgnoreInvalidIDs) || f.failing() {
				writeJSON(w, http.StatusBadRequest, map[string]any{"error": "Invalid user_ids: " + strings.Join(b.UserIDs, ",")})
				return
			}
			f.nextJob++
			j := &job{id: day(f.nextJob), people: ps, state: "pending"}
			f.jobs[j.id] = j
			f.order = append(f.order, j.id)
			writeJSON(w, http.StatusOK, []any{jobJSON(j, "staging")})
		})
		mux.HandleFunc("GET /api/2/deletions/users", func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if !f.basicOK(r, APIKey, SecretKey) {
				unauthorized(w, map[string]any{"error": "Invalid API key"})
				return
			}
			start, end := r.URL.Query().Get("start_day"), r.URL.Query().Get("end_day")
			if start == "" || end == "" {
				writeJSON(w, http.StatusBadRequest, map[string]any{"error": "start_day and end_day are required"})
				return
			}
			out := []any{}
			for _, id := range f.order {
				if j := f.jobs[id]; id >= start && id <= end {
					st := map[string]string{"pending": "staging", "done": "done"}[f.poll(j)]
					if st == "staging" && j.polls > 1 {
						st = "submitted"
					}
					if st == "" {
						st = "staging" // Amplitude has no failed job state; a failure stays staged
					}
					out = append(out, jobJSON(j, st))
				}
			}
			writeJSON(w, http.StatusOK, out)
		})
	})
}

// Mixpanel is the GDPR and CCPA API v3 (docs.mixpanel.com/reference/
// gdpr-api), under /api/app: POST /data-deletions/v3.0/?token=PROJECT with
// a bearer OAuth token and {distinct_ids (at most 2000), compliance_type},
// answered {"status":"ok","results":{"task_id"}}; GET
// /data-deletions/v3.0/{task_id}?token= answers results.status PENDING,
// STARTED, then SUCCESS or FAILURE.
func Mixpanel(tb testing.TB) *Fake {
	return newFake(tb, secrets, func(f *Fake, mux *http.ServeMux) {
		bad := func(w http.ResponseWriter, status int, msg string) {
			writeJSON(w, status, map[string]any{"status": "error", "error": msg})
		}
		mux.HandleFunc("POST /api/app/data-deletions/v3.0/", func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if !f.bearerOK(r, "token") {
				bad(w, http.StatusUnauthorized, "invalid OAuth token")
				return
			}
			if r.URL.Query().Get("token") != ProjectToken {
				bad(w, http.StatusBadRequest, "unknown project token")
				return
			}
			var b struct {
				DistinctIDs    []string `json:"distinct_ids"`
				ComplianceType string   `json:"compliance_type"`
			}
			if err := decode(r, &b); err != nil || len(b.DistinctIDs) == 0 || len(b.DistinctIDs) > 2000 || !in(b.ComplianceType, []string{"GDPR", "CCPA"}) {
				bad(w, http.StatusBadRequest, "invalid request")
				return
			}
			if f.failing() {
				bad(w, http.StatusBadRequest, "invalid distinct_id "+b.DistinctIDs[0])
				return
			}
			j := f.newJob("task", f.find(func(p *Person) bool { return in(p.UserID, b.DistinctIDs) }))
			writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "results": map[string]string{"task_id": j.id}})
		})
		mux.HandleFunc("GET /api/app/data-deletions/v3.0/{id}", func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if !f.bearerOK(r, "token") {
				bad(w, http.StatusUnauthorized, "invalid OAuth token")
				return
			}
			j := f.jobs[r.PathValue("id")]
			if j == nil || r.URL.Query().Get("token") != ProjectToken {
				bad(w, http.StatusNotFound, "task not found")
				return
			}
			st := map[string]string{"pending": "STARTED", "done": "SUCCESS", "failed": "FAILURE", "partial": "FAILURE"}[f.poll(j)]
			if j.polls == 1 && st == "STARTED" {
				st = "PENDING"
			}
			writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "results": map[string]any{"status": st, "result": ""}})
		})
	})
}

// HubSpot is the CRM contacts API (developers.hubspot.com): POST
// /crm/v3/objects/contacts/gdpr-delete {objectId, idProperty} with a
// bearer private app token answers 204 (an unknown email is blocklisted,
// also 204); GET /crm/v3/objects/contacts/{email}?idProperty=email answers
// the contact or 404.
func HubSpot(tb testing.TB) *Fake {
	return newFake(tb, secrets, func(f *Fake, mux *http.ServeMux) {
		hsErr := func(w http.ResponseWriter, status int, msg string) {
			writeJSON(w, status, map[string]any{"status": "error", "message": msg, "category": "VALIDATION_ERROR"})
		}
		mux.HandleFunc("POST /crm/v3/objects/contacts/gdpr-delete", func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if !f.bearerOK(r, "token") {
				hsErr(w, http.StatusUnauthorized, "Authentication credentials not found.")
				return
			}
			var b struct {
				ObjectID   string `json:"objectId"`
				IDProperty string `json:"idProperty"`
			}
			if err := decode(r, &b); err != nil || b.ObjectID == "" {
				hsErr(w, http.StatusBadRequest, "Invalid input JSON")
				return
			}
			f.batches = append(f.batches, 1)
			if f.failing() {
				hsErr(w, http.StatusBadRequest, "Property values were not valid: "+b.ObjectID)
				return
			}
			var ps []*Person
			if b.IDProperty == "email" {
				ps = f.find(func(p *Person) bool { return strings.EqualFold(p.Email, b.ObjectID) })
			} else {
				ps = f.find(func(p *Person) bool { return p.ID == b.ObjectID })
				if len(ps) == 0 {
					hsErr(w, http.StatusNotFound, "resource not found")
					return
				}
			}
			for _, p := range ps {
				p.State = "gone"
			}
			w.WriteHeader(http.StatusNoContent)
		})
		mux.HandleFunc("GET /crm/v3/objects/contacts/{id}", func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if !f.bearerOK(r, "token") {
				hsErr(w, http.StatusUnauthorized, "Authentication credentials not found.")
				return
			}
			id := r.PathValue("id")
			ps := f.find(func(p *Person) bool {
				if r.URL.Query().Get("idProperty") == "email" {
					return strings.EqualFold(p.Email, id)
				}
				return p.ID == id
			})
			if len(ps) == 0 {
				hsErr(w, http.StatusNotFound, "resource not found")
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"id": ps[0].ID, "properties": map[string]string{"email": ps[0].Email}, "archived": false})
		})
	})
}

// Zendesk is the Support users API (developer.zendesk.com): basic auth
// "{agent}/token:{api_token}"; GET /api/v2/users/search.json?query=email:X
// with page and per_page (offset pagination, next_page); DELETE
// /api/v2/users/{id} soft-deletes (the user leaves search but keeps its
// data); DELETE /api/v2/deleted_users/{id} permanently deletes a
// soft-deleted user (404 for one that is not).
func Zendesk(tb testing.TB) *Fake {
	return newFake(tb, secrets, func(f *Fake, mux *http.ServeMux) {
		zdErr := func(w http.ResponseWriter, status int, e, desc string) {
			writeJSON(w, status, map[string]any{"error": e, "description": desc})
		}
		auth := func(w http.ResponseWriter, r *http.Request) bool {
			if !f.basicOK(r, Agent+"/token", Token) {
				zdErr(w, http.StatusUnauthorized, "Couldn't authenticate you", "")
				return false
			}
			return true
		}
		user := func(p *Person) map[string]any {
			return map[string]any{"id": json64(p.ID), "email": p.Email, "active": p.State == "active", "name": "N"}
		}
		mux.HandleFunc("GET /api/v2/users/search.json", func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if !auth(w, r) {
				return
			}
			q := r.URL.Query()
			email, ok := strings.CutPrefix(q.Get("query"), "email:")
			page, err1 := strconv.Atoi(q.Get("page"))
			per, err2 := strconv.Atoi(q.Get("per_page"))
			if !ok || err1 != nil || err2 != nil || page < 1 || per < 1 || per > 100 {
				zdErr(w, http.StatusBadRequest, "InvalidPaginationParameter", "bad query")
				return
			}
			ps := f.find(func(p *Person) bool { return strings.EqualFold(p.Email, email) })
			users := []any{}
			for i := (page - 1) * per; i < len(ps) && i < page*per; i++ {
				users = append(users, user(ps[i]))
			}
			var next any
			if page*per < len(ps) {
				next = fmt.Sprintf("%s/api/v2/users/search.json?page=%d", f.URL, page+1)
			}
			writeJSON(w, http.StatusOK, map[string]any{"users": users, "next_page": next, "count": len(ps)})
		})
		mux.HandleFunc("DELETE /api/v2/users/{id}", func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if !auth(w, r) {
				return
			}
			p := f.byID(r.PathValue("id"))
			if p == nil || p.State != "active" {
				zdErr(w, http.StatusNotFound, "RecordNotFound", "Not found")
				return
			}
			p.State = "soft"
			writeJSON(w, http.StatusOK, map[string]any{"user": user(p)})
		})
		mux.HandleFunc("DELETE /api/v2/deleted_users/{id}", func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if !auth(w, r) {
				return
			}
			if f.failing() {
				zdErr(w, http.StatusUnprocessableEntity, "RecordInvalid", "cannot delete user "+r.PathValue("id"))
				return
			}
			p := f.byID(r.PathValue("id"))
			if p == nil || p.State != "soft" {
				zdErr(w, http.StatusNotFound, "RecordNotFound", "Not found")
				return
			}
			p.State = "gone"
			writeJSON(w, http.StatusOK, map[string]any{"deleted_user": map[string]any{"id": json64(p.ID), "name": "Permanently Deleted User"}})
		})
	})
}

// json64 writes a numeric id as a JSON number, as Zendesk does.
func json64(id string) any {
	if n, err := strconv.ParseInt(id, 10, 64); err == nil {
		return n
	}
	return id
}

// Auth0 is the Management API v2 (auth0.com/docs/api/management/v2): POST
// /oauth/token (client credentials, JSON, with the API's audience) gives a
// bearer token; GET /api/v2/users-by-email?email= lists the users with that
// email (several connections may hold one); DELETE /api/v2/users/{id}
// answers 204.
func Auth0(tb testing.TB) *Fake {
	return newFake(tb, secrets, func(f *Fake, mux *http.ServeMux) {
		a0Err := func(w http.ResponseWriter, status int, e, msg string) {
			writeJSON(w, status, map[string]any{"statusCode": status, "error": e, "message": msg})
		}
		mux.HandleFunc("POST /oauth/token", func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			defer f.mu.Unlock()
			var b struct {
				GrantType    string `json:"grant_type"`
				ClientID     string `json:"client_id"`
				ClientSecret string `json:"client_secret"`
				Audience     string `json:"audience"`
			}
			if err := decode(r, &b); err != nil || b.GrantType != "client_credentials" {
				writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request"})
				return
			}
			if b.ClientID != ClientID || b.ClientSecret != ClientSecret || b.Audience != f.URL+"/api/v2/" || f.revoked {
				writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "access_denied", "error_description": "Unauthorized"})
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"access_token": f.issueToken(), "expires_in": 86400, "token_type": "Bearer"})
		})
		mux.HandleFunc("GET /api/v2/users-by-email", func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if !f.tokenOK(r) {
				a0Err(w, http.StatusUnauthorized, "Unauthorized", "Expired token received for JSON Web Token validation")
				return
			}
			email := r.URL.Query().Get("email")
			out := []any{}
			for _, p := range f.find(func(p *Person) bool { return strings.EqualFold(p.Email, email) }) {
				out = append(out, map[string]any{"user_id": p.ID, "email": p.Email, "email_verified": true})
			}
			writeJSON(w, http.StatusOK, out)
		})
		mux.HandleFunc("DELETE /api/v2/users/{id}", func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if !f.tokenOK(r) {
				a0Err(w, http.StatusUnauthorized, "Unauthorized", "Expired token received for JSON Web Token validation")
				return
			}
			if f.failing() {
				a0Err(w, http.StatusBadRequest, "Bad Request", "Cannot delete user "+r.PathValue("id"))
				return
			}
			if p := f.byID(r.PathValue("id")); p != nil {
				p.State = "gone"
			}
			w.WriteHeader(http.StatusNoContent)
		})
	})
}

// Intercom is the REST API (developers.intercom.com): a bearer access
// token; POST /contacts/search {query:{field,operator,value},
// pagination:{per_page,starting_after}} with cursor pages
// (pages.next.starting_after); POST /user_delete_requests
// {intercom_user_id} answers {"id": n} and the contact leaves search.
func Intercom(tb testing.TB) *Fake {
	return newFake(tb, secrets, func(f *Fake, mux *http.ServeMux) {
		icErr := func(w http.ResponseWriter, status int, code, msg string) {
			writeJSON(w, status, map[string]any{"type": "error.list", "errors": []map[string]string{{"code": code, "message": msg}}})
		}
		mux.HandleFunc("POST /contacts/search", func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if !f.bearerOK(r, "token") {
				icErr(w, http.StatusUnauthorized, "unauthorized", "Access Token Invalid")
				return
			}
			var b struct {
				Query struct {
					Field    string `json:"field"`
					Operator string `json:"operator"`
					Value    string `json:"value"`
				} `json:"query"`
				Pagination struct {
					PerPage       int    `json:"per_page"`
					StartingAfter string `json:"starting_after"`
				} `json:"pagination"`
			}
			if err := decode(r, &b); err != nil || b.Query.Operator != "=" || !in(b.Query.Field, []string{"email", "external_id"}) || b.Pagination.PerPage < 1 || b.Pagination.PerPage > 150 {
				icErr(w, http.StatusBadRequest, "parameter_invalid", "invalid search")
				return
			}
			ps := f.find(func(p *Person) bool {
				if b.Query.Field == "email" {
					return strings.EqualFold(p.Email, b.Query.Value)
				}
				return p.UserID == b.Query.Value
			})
			start := 0
			if b.Pagination.StartingAfter != "" {
				start = -1
				for i, p := range ps {
					if "after-"+p.ID == b.Pagination.StartingAfter {
						start = i + 1
					}
				}
				if start < 0 {
					icErr(w, http.StatusBadRequest, "parameter_invalid", "starting_after is not valid")
					return
				}
			}
			data := []any{}
			end := min(start+b.Pagination.PerPage, len(ps))
			for _, p := range ps[start:end] {
				data = append(data, map[string]any{"type": "contact", "id": p.ID, "email": p.Email, "external_id": p.UserID, "role": "user"})
			}
			pages := map[string]any{"type": "pages", "per_page": b.Pagination.PerPage}
			if end < len(ps) {
				pages["next"] = map[string]any{"starting_after": "after-" + ps[end-1].ID}
			}
			writeJSON(w, http.StatusOK, map[string]any{"type": "list", "data": data, "total_count": len(ps), "pages": pages})
		})
		mux.HandleFunc("POST /user_delete_requests", func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if !f.bearerOK(r, "token") {
				icErr(w, http.StatusUnauthorized, "unauthorized", "Access Token Invalid")
				return
			}
			var b struct {
				IntercomUserID string `json:"intercom_user_id"`
			}
			if err := decode(r, &b); err != nil || b.IntercomUserID == "" {
				icErr(w, http.StatusBadRequest, "parameter_invalid", "intercom_user_id is required")
				return
			}
			if f.failing() {
				icErr(w, http.StatusUnprocessableEntity, "parameter_invalid", "cannot delete "+b.IntercomUserID)
				return
			}
			p := f.byID(b.IntercomUserID)
			if p == nil || p.State != "active" {
				icErr(w, http.StatusNotFound, "not_found", "User Not Found")
				return
			}
			p.State = "gone"
			f.nextJob++
			f.order = append(f.order, strconv.Itoa(f.nextJob))
			writeJSON(w, http.StatusOK, map[string]any{"id": f.nextJob})
		})
	})
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// OpenDSR is a processor's OpenDSR endpoint as mParticle's DSR API v3
// documents it: basic auth; POST /requests {regulation, subject_request_id
// (a UUID), subject_request_type, submitted_time, subject_identities
// [{identity_type, identity_value, identity_format}], api_version}
// answered 202 (a repeated subject_request_id answers the same request);
// GET /requests/{id} answers request_status pending, in_progress, then
// completed or cancelled.
func OpenDSR(tb testing.TB) *Fake {
	return newFake(tb, secrets, func(f *Fake, mux *http.ServeMux) {
		dsrErr := func(w http.ResponseWriter, status int, msg string) {
			writeJSON(w, status, map[string]any{"error": map[string]any{"code": status, "message": msg}})
		}
		mux.HandleFunc("POST /requests", func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if !f.basicOK(r, Username, Password) {
				dsrErr(w, http.StatusUnauthorized, "Unauthorized")
				return
			}
			type identity struct {
				Type   string `json:"identity_type"`
				Value  string `json:"identity_value"`
				Format string `json:"identity_format"`
			}
			var b struct {
				Regulation        string     `json:"regulation"`
				SubjectRequestID  string     `json:"subject_request_id"`
				SubjectRequestTyp string     `json:"subject_request_type"`
				SubmittedTime     string     `json:"submitted_time"`
				Identities        []identity `json:"subject_identities"`
				APIVersion        string     `json:"api_version"`
			}
			if err := decode(r, &b); err != nil || !uuidPattern.MatchString(b.SubjectRequestID) || b.SubjectRequestTyp != "erasure" ||
				!in(b.Regulation, []string{"gdpr", "ccpa"}) || len(b.Identities) == 0 {
				dsrErr(w, http.StatusBadRequest, "invalid request")
				return
			}
			if _, err := time.Parse(time.RFC3339, b.SubmittedTime); err != nil {
				dsrErr(w, http.StatusBadRequest, "submitted_time must be RFC 3339")
				return
			}
			for _, id := range b.Identities {
				if !in(id.Type, []string{"email", "phone_number", "controller_customer_id"}) || id.Format != "raw" {
					dsrErr(w, http.StatusBadRequest, "unsupported identity "+id.Type+": "+id.Value)
					return
				}
			}
			if f.failing() {
				dsrErr(w, http.StatusBadRequest, "invalid identity "+b.Identities[0].Value)
				return
			}
			if _, ok := f.jobs[b.SubjectRequestID]; !ok {
				ps := f.find(func(p *Person) bool {
					for _, id := range b.Identities {
						if (id.Type == "email" && p.Email == id.Value) || (id.Type == "phone_number" && p.Phone == id.Value) || (id.Type == "controller_customer_id" && p.UserID == id.Value) {
							return true
						}
					}
					return false
				})
				j := &job{id: b.SubjectRequestID, people: ps, state: "pending"}
				f.jobs[j.id] = j
				f.order = append(f.order, j.id)
			}
			writeJSON(w, http.StatusAccepted, map[string]any{
				"controller_id": "workspace-1", "subject_request_id": b.SubjectRequestID,
				"expected_completion_time": "2026-12-21T00:00:00Z", "received_time": "2026-12-07T12:00:00Z", "encoded_request": "e30=",
			})
		})
		mux.HandleFunc("GET /requests/{id}", func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if !f.basicOK(r, Username, Password) {
				dsrErr(w, http.StatusUnauthorized, "Unauthorized")
				return
			}
			j := f.jobs[r.PathValue("id")]
			if j == nil {
				dsrErr(w, http.StatusNotFound, "request not found")
				return
			}
			st := map[string]string{"pending": "in_progress", "done": "completed", "failed": "cancelled", "partial": "cancelled"}[f.poll(j)]
			if j.polls == 1 && st == "in_progress" {
				st = "pending"
			}
			writeJSON(w, http.StatusOK, map[string]any{
				"controller_id": "workspace-1", "subject_request_id": j.id, "request_status": st,
				"expected_completion_time": "2026-12-21T00:00:00Z", "api_version": "3.0", "results_url": nil,
			})
		})
	})
}
