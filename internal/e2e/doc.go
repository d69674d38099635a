// Package e2e holds end-to-end tests that run the real lethe binary as a
// separate process and kill it with SIGKILL mid-work, then restart it on the
// same database: the only way to test that a crash at any point (not just a
// canceled context) ends in the same result.
//
// The tests build the binary once per run (go build), need the go tool on
// PATH, and take about a minute each because River rescues the jobs of a
// dead process only after workers.rescue_after plus its 30s check interval.
package e2e
