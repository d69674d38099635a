// Package drp serves the provider side of the Data Rights Protocol 1.0
// (consumer-reports-innovation-lab/data-rights-protocol): authorized
// agents get pair-wise bearer tokens by signing a setup message with
// their Ed25519 key, then send Ed25519-signed deletion requests, read
// their status and revoke them. Requests are mapped onto lethe's
// requests, states and receipts; status callbacks go through the
// pipeline's outbound status events in DRP's shape (Format). Only the
// deletion right is carried out. docs/drp.md is the reference.
package drp
