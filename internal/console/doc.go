// Package console is lethe's web console for the privacy team, served by
// `lethe serve` at /console/ from the same binary: sign-in as a named
// operator, an overview of what is open, held, due and failing, the
// request register with each request's timeline, tasks and receipt, the
// actions an operator's role allows, CSV import and the auditor's exports.
//
// Pages are rendered on the server from embedded templates; the only
// script is the one that refreshes an import's progress. The console
// holds no logic of its own about requests: every action is a call to the
// same pipeline and intake functions the native API uses, so the audit log
// and the rules (roles, legal bounds, states) are one.
//
// Security: sessions are server-side rows known by the SHA-256 of an
// HttpOnly, SameSite=Strict cookie (Secure when served over TLS) and
// expire; every form carries the session's CSRF token, compared in
// constant time; failed sign-ins are throttled per operator and per
// address; no identity ever appears in a URL, and identities of open
// requests are masked unless an operator reveals them, which is audited.
package console
