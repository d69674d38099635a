// Package opendsr serves the processor side of OpenDSR 2.0
// (opengdpr/OpenDSR): discovery, erasure requests, their status and
// cancellation, answers and callbacks signed with a certificate published
// through discovery. Controllers are lethe clients authenticating with
// HTTP Basic (API key and shared secret). Requests are mapped onto
// lethe's requests, states and receipts; callbacks go through the
// pipeline's outbound status events in OpenDSR's shape (Format).
// docs/opendsr.md is the reference.
package opendsr
