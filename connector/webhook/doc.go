// Package webhook is the connector for a company's own services: lethe
// POSTs a signed erase call with the subject's identities (only the types
// the target may receive) and the service erases its data, at once or
// later.
//
// # Data map
//
//	targets:
//	  - name: billing-svc
//	    kind: webhook
//	    url: https://billing.internal/lethe/erase     # erase endpoint; required
//	    plan_url: https://billing.internal/lethe/plan # optional
//	    verify_url: https://billing.internal/lethe/verify # optional
//	    secret: ${BILLING_WEBHOOK_SECRET}             # >= 16 bytes; required
//	    identities: [email, user_id]                  # types the service may receive; required
//	    callback_base_url: https://lethe.internal:8080 # optional: lets the service call back
//	    timeout: 10s                # per HTTP call; default 10s
//	    max_concurrency: 4          # calls in flight to this service; default 4
//	    poll_interval: 30s          # first wait after "pending"; doubles; default 30s
//	    poll_max: 30m               # longest wait between polls; default 30m
//	    confirm_within: 24h         # the service must confirm within; default the pipeline's 24h
//	    allow_hosts: [billing.internal] # hosts that may have non-public addresses; default none
//
// lethe calls only public internet addresses unless the host is in
// allow_hosts (exact names, "*." and a domain, IP addresses or CIDR
// networks): every address a name resolves to is checked when dialed, so
// an internal service needs its host listed. url, plan_url and verify_url
// must be https, or http to a loopback address or a host in allow_hosts.
// Proxies from the environment (HTTPS_PROXY) are not used: the check must
// see the real destination.
//
// # The calls
//
// Every call carries Content-Type application/json, Idempotency-Key: the
// request id, and an X-Lethe-Signature header keyed with the target's
// secret, which the service must check: the scheme is described once, in
// docs/callbacks.md ("Verifying the signature"), and signature.Verify
// (package github.com/lethe-privacy/lethe/signature) checks it in Go.
// Redirects are never followed.
//
// Erase, plan and verify calls POST
//
//	{"request_id": "...", "identities": {"email": ["a@example.com"], "user_id": ["42"]},
//	 "callback_url": "https://lethe.internal:8080/v1/tasks/<token>/complete"}
//
// (callback_url only on erase calls, only with callback_base_url). The same
// request sends the same bytes every time, so the service can deduplicate
// on the idempotency key.
//
// The erase endpoint answers:
//   - 200 {"status":"done","counts":{"sessions":3,"orders":1}}: done. Counts
//     are what this call erased (a repeat after everything is gone reports
//     zeros); object names are 1-64 characters of A-Z a-z 0-9 _ . : / -.
//   - 202 {"status":"pending","check_url":"/lethe/erase/abc"} (or 200 with
//     status pending, queued, accepted or processing): accepted, not done.
//     lethe GETs check_url (signed over an empty body) after poll_interval,
//     doubling up to poll_max, until it answers 200 done. check_url may be
//     relative; it must be on the erase endpoint's scheme and host. A
//     check_url answering 404 or 410 makes lethe send the erase call
//     again. Without check_url lethe repeats the erase call at the same
//     pace, or waits for the callback.
//   - {"status":"failed"}: the task fails.
//   - 429 or 503 with Retry-After: lethe waits that long (at most 1h)
//     without counting a failed attempt; without Retry-After, and on 408
//     and 5xx, it retries with backoff; other statuses fail the task.
//
// A pending answer is never reported as done. Past confirm_within from the
// task's first attempt the task fails: "target did not confirm erasure
// within 24h".
//
// # Calling back
//
// Instead of (or as well as) answering the check URL, the service may POST
// to callback_url, signed the same way with the same secret:
//
//	{"status": "done", "counts": {"sessions": 3}}   or   {"status": "failed", "reason": "..."}
//
// lethe answers 200 {"status":"recorded"} (also for a repeat), 401 for a bad
// signature, 404 for an unknown token and 409 when the task already failed,
// in the native error shape. The token is random, stored hashed, and works
// only for its task.
//
// # Plan and Verify
//
// plan_url answers 200 {"counts": {...}} with what an erase would delete;
// without it Plan reports one "forward" line whose count is unknown (0).
// verify_url answers 200 {"remaining": {"sessions": 0}}; any count above
// zero fails verification. Without it Verify trusts the service's "done".
package webhook
