package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/http/auth"
	"github.com/lethe-privacy/lethe/internal/http/request"
	"github.com/lethe-privacy/lethe/internal/operators"
	"github.com/lethe-privacy/lethe/internal/store"
)

const (
	// sessionCookie holds the session id; the store knows only its hash.
	sessionCookie = "lethe_console"
	// signInCookie carries the sign-in form's CSRF token before there is
	// a session (double submit: the form and the cookie must agree).
	signInCookie = "lethe_console_signin"
	// csrfField is the form field every POST carries.
	csrfField = "csrf"
	// maxFormBytes caps every form but the import upload.
	maxFormBytes = 64 << 10
	// throttleSurface separates the console's failed sign-ins from the
	// API's in the shared throttle.
	throttleSurface = "console"
)

// session is a signed-in operator on one request.
type session struct {
	idHash    string
	csrf      string
	principal operators.Principal
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand never fails on Linux; a short read panics inside
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// sameToken compares two tokens in constant time; empty never matches.
func sameToken(a, b string) bool {
	return a != "" && b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func (c *Console) cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: name, Value: value, Path: Prefix, MaxAge: maxAge,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	}
}

// session returns the request's live session, or nil.
func (c *Console) session(r *http.Request) (*session, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil, nil
	}
	s, o, err := c.opts.Store.GetSession(r.Context(), hashID(ck.Value), c.opts.Now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &session{idHash: s.IDHash, csrf: s.CSRF, principal: operators.Principal{Name: o.Name, Role: operators.Role(o.Role)}}, nil
}

// handler is a console page or action with its session.
type handler func(w http.ResponseWriter, r *http.Request, s *session)

// authed wraps h: no session sends the browser to sign in; a role below
// min gets 403; a POST must carry the session's CSRF token. The operator
// travels in the context, so actions are audited under its name.
func (c *Console) authed(min operators.Role, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := c.session(r)
		if err != nil {
			c.fail(w, r, nil, err)
			return
		}
		if s == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, Prefix+"sign-in?next="+url.QueryEscape(r.URL.Path), http.StatusSeeOther)
				return
			}
			c.fail(w, r, nil, lethe.Errorf(lethe.EUNAUTH, "Your session has ended; sign in again."))
			return
		}
		if !s.principal.Can(min) {
			c.fail(w, r, s, lethe.Errorf(lethe.EFORBIDDEN, "Your role (%s) does not allow this.", s.principal.Role))
			return
		}
		if r.Method == http.MethodPost && !c.checkCSRF(w, r, s.csrf) {
			c.fail(w, r, s, lethe.Errorf(lethe.EFORBIDDEN, "The form was not sent from this console (missing or wrong CSRF token); reload the page and try again."))
			return
		}
		r = r.WithContext(operators.WithPrincipal(r.Context(), s.principal))
		h(w, r, s)
	}
}

// checkCSRF parses the form (multipart or urlencoded) and compares its
// token with want.
func (c *Console) checkCSRF(w http.ResponseWriter, r *http.Request, want string) bool {
	var got string
	if isMultipart(r) {
		r.Body = http.MaxBytesReader(w, r.Body, maxImportBytes)
		if err := r.ParseMultipartForm(maxImportBytes); err != nil {
			return false
		}
		got = r.FormValue(csrfField)
	} else {
		form, err := request.ReadForm(r, maxFormBytes)
		if err != nil {
			return false
		}
		r.PostForm, r.Form = form, form
		got = form.Get(csrfField)
	}
	return sameToken(got, want)
}

func isMultipart(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return len(ct) >= 19 && ct[:19] == "multipart/form-data"
}

// signInView is the sign-in page's data.
type signInView struct {
	Name string
	Next string
}

func (c *Console) handleSignInForm(w http.ResponseWriter, r *http.Request) {
	token := randomToken()
	http.SetCookie(w, c.cookie(r, signInCookie, token, 3600))
	c.render(w, http.StatusOK, "signin", page{Title: "Sign in", CSRF: token, Data: signInView{Next: safeNext(r.URL.Query().Get("next"))}})
}

// handleSignIn checks the operator's name and token. Failures are
// throttled per name and per address, and a throttled attempt is refused
// before the token is checked, so guessing while blocked tells nothing.
func (c *Console) handleSignIn(w http.ResponseWriter, r *http.Request) {
	ck, _ := r.Cookie(signInCookie)
	form, err := request.ReadForm(r, maxFormBytes)
	if err != nil || ck == nil || !sameToken(form.Get(csrfField), ck.Value) {
		c.fail(w, r, nil, lethe.Errorf(lethe.EFORBIDDEN, "The sign-in form expired or was not sent from this console; reload the page and try again."))
		return
	}
	name, token, next := form.Get("name"), form.Get("token"), safeNext(form.Get("next"))
	again := func(msg string, code int) {
		c.render(w, code, "signin", page{Title: "Sign in", CSRF: ck.Value, Error: msg, Data: signInView{Name: clip(name, 64), Next: next}})
	}
	attempt := auth.AttemptOf(r, throttleSurface, "operator:"+name)
	if err := c.opts.Throttle.Check(attempt); err != nil {
		again("Too many failed sign-ins; wait a minute and try again.", http.StatusTooManyRequests)
		return
	}
	p, err := c.opts.Operators.Authenticate(r.Context(), token)
	if err != nil && !errors.Is(err, operators.ErrInvalidCredentials) {
		c.fail(w, r, nil, err)
		return
	}
	// The name must match the token's operator: a token alone signs no
	// one in under another name, and the message does not say which part
	// was wrong.
	if err != nil || subtle.ConstantTimeCompare([]byte(p.Name), []byte(name)) != 1 {
		_ = c.opts.Throttle.Fail(attempt)
		again("Wrong name or token.", http.StatusUnauthorized)
		return
	}
	id, now := randomToken(), c.opts.Now()
	if err := c.opts.Store.CreateSession(r.Context(), store.Session{
		IDHash: hashID(id), Operator: p.Name, CSRF: randomToken(), CreatedAt: now, ExpiresAt: now.Add(c.opts.SessionTTL),
	}); err != nil {
		c.fail(w, r, nil, err)
		return
	}
	_, _ = c.opts.Store.DeleteExpiredSessions(r.Context(), now)
	http.SetCookie(w, c.cookie(r, signInCookie, "", -1))
	http.SetCookie(w, c.cookie(r, sessionCookie, id, int(c.opts.SessionTTL.Seconds())))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) handleSignOut(w http.ResponseWriter, r *http.Request, s *session) {
	if err := c.opts.Store.DeleteSession(r.Context(), s.idHash); err != nil {
		c.fail(w, r, s, err)
		return
	}
	http.SetCookie(w, c.cookie(r, sessionCookie, "", -1))
	http.Redirect(w, r, Prefix+"sign-in", http.StatusSeeOther)
}

// safeNext keeps a post-sign-in redirect inside the console, so the
// sign-in page cannot be used to send an operator elsewhere.
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || next == "" || u.Scheme != "" || u.Host != "" || len(u.Path) < len(Prefix) || u.Path[:len(Prefix)] != Prefix || u.RawQuery != "" {
		return Prefix
	}
	return u.Path
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
