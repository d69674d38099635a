// Package processor holds the connectors for processors: third parties that
// hold the subject's data on the company's behalf and take deletions
// through their own deletion API. lethe cannot erase there; it forwards the
// request, and reports the action "forward".
//
// A processor is one small file: a type implementing API (Submit: ask for
// one identity's deletion) and, when the processor can say how a deletion
// stands, StatusAPI (Status). The Connector does the rest for every
// processor alike: the HTTP client (timeout per call, no redirects, calls
// in flight capped), the target's call budget, Retry-After and the block
// after a 429, batches, the checkpoint that keeps a retry from submitting
// twice, pending answers with backoff, and the report. An API passes the
// processor's messages through package redact before they become errors.
//
// # Data map
//
// Options every processor target takes:
//
//	base_url: https://api.processor.example # required; https (http only to loopback or allow_hosts)
//	identities: [user_id]   # identity types the processor may receive
//	timeout: 10s            # per HTTP call; default 10s
//	rate_limit: 50/10m      # calls (all endpoints) in any window; "0" = none; default per kind
//	max_concurrency: 4      # calls in flight to this processor; default 4
//	batch_size: 20          # identities submitted per Erase call; default 20
//	poll_interval: 30s      # first status check after submitting; doubles; default 30s
//	poll_max: 30m           # longest wait between status checks; default 30m
//	confirm_within: 24h     # the processor must complete within; default the pipeline's
//	allow_hosts: []         # hosts that may have non-public addresses (names, *.domain, IPs, CIDRs); default none
//
// Only public internet addresses are dialed unless the host is in
// allow_hosts; every address a name resolves to is checked when dialed.
// Proxies from the environment (HTTPS_PROXY) are not used: the check must
// see the real destination.
//
// Credentials are given as ${VAR}; they never appear in logs, metrics or
// errors.
//
// # processor-s2s
//
//	targets:
//	  - name: purchasely
//	    kind: processor-s2s
//	    base_url: https://s2s.purchasely.io
//	    api_key: ${PURCHASELY_API_KEY}        # X-API-KEY; required
//	    secret: ${PURCHASELY_SHARED_SECRET}   # signs the body; required
//	    identities: [user_id]                 # default [user_id]
//	    rate_limit: 50/10m                    # default: the contract's limit
//
// For each allowed identity lethe POSTs {base_url}/user_deletion_requests
// with body {"user_id":"<value>"} (every allowed type is sent as user_id),
// X-API-KEY, and Authorization: the lower-case hex HMAC-SHA256 of the exact
// body bytes under the secret. 200 {"id": "..."} is accepted; the id is kept
// in the task's checkpoint, so an Erase repeated after a partial run or a
// crash submits only what is not yet accepted (and the processor answers a
// repeat for an open request with the same id anyway).
//
// The contract allows 50 requests per 10 minutes and blocks the key for 10
// minutes on the 51st with a 429. lethe's default budget keeps under the
// limit in each process; a 429 (Retry-After, or 10 minutes without one)
// holds every call to the target back until it has passed, and the task
// waits (connector.Pending): it is never reported done, nor counted as a
// failed attempt. 403 and 422 fail the task (wrong key or secret, a user id
// the processor refuses); 5xx and timeouts are retried with backoff.
//
// The API has no status endpoint: once the processor has accepted every
// identity, the erasure is done as far as lethe can know. The report says
// "forward" with the number of identities accepted and the reason "accepted
// by the processor; its completion cannot be observed", and Verify passes
// without a call: the processor's own completion is not observable, and
// the receipt says only what is known. A repeated Erase or Plan cannot know
// the subject was forwarded before (the checkpoint ends with the task), so
// it counts the identities again; the processor deduplicates open requests.
//
// # processor-connect
//
//	targets:
//	  - name: storefront
//	    kind: processor-connect
//	    base_url: https://connect.instacart.com
//	    client_id: ${CONNECT_CLIENT_ID}          # required
//	    client_secret: ${CONNECT_CLIENT_SECRET}  # required
//	    scope: connect:compliance                # default; "-" sends none
//	    identities: [email, phone, user_id]      # required
//	    rate_limit: 300/1m                       # default none: 429s are honoured
//
// The token comes from POST {base_url}/v2/oauth/token
// ({"client_id","client_secret","grant_type":"client_credentials","scope"}),
// is shared by all of the target's calls, fetched by one call at a time,
// and refreshed at 90% of its expires_in (at most 5 minutes early). A 401
// gets one new token and one repeat; a second 401, or a token request
// refused with 400/401/403, fails the task (credentials are wrong). At
// start lethe gets a token: refused credentials stop the start, while a
// processor that is down or throttling does not (its tasks wait).
//
// For each allowed identity lethe POSTs /v2/compliance/customers/delete
// with {"identifier":"<value>"} and a bearer token; {"success": true} and
// {"success": false} ("a request for that customer already exists") both
// count as submitted. The identifier is free-form: the processor decides
// whether it is an email, a phone number or another id, so a user id that
// looks like an email is taken as one.
//
// Then lethe polls POST /v2/compliance/customers/deletion/status with
// {"identifiers":[...]} (at most 100 per call) after poll_interval,
// doubling up to poll_max, until every identity is "completed"; the task
// is pending meanwhile, with a checkpoint recording what was submitted.
// Every Erase call asks the status first, so identities already completed
// or pending (submitted by an earlier attempt that crashed, or by another
// request) are not submitted again. "canceled" for an identity this task
// submitted fails the task (someone at the processor decided; a human must
// look); "not_found" is submitted (again). Plan asks the status too and
// counts what would be submitted; Verify requires every identity
// "completed".
//
// # Limits of what lethe can know
//
//   - The call budget is per lethe process; several processes sharing one
//     processor key should split the budget between them. The processor's
//     429s are honoured whatever the budget says.
//   - The checkpoint holds digests of the identities (keyed by the request
//     id), not their values, and the processor's references. It is sealed
//     at rest by the pipeline and dropped when the task ends.
package processor
