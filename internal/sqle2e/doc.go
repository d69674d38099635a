// Package sqle2e checks lethe end to end against real SQL databases: a shop
// schema of thousands of users is erased subject by subject through the
// native API (intake, pipeline and SQL connector wired as `lethe serve`
// wires them), and direct SQL then proves that exactly the subjects' rows
// were deleted or pseudonymised as mapped, retained rows are untouched and
// no other user's row changed.
//
// It also holds BenchmarkErase, which compares the SQL connector with a
// hand-written transaction on PostgreSQL shops of 100k and 1M users, and
// BenchmarkEraseThroughput, subjects per second through Erase and
// EraseBatch against hand-written SQL on PostgreSQL and SQLite with 1 and
// 10 connections; see docs/performance.md and scripts/bench-erase. Both
// run only with -bench.
//
// Everything is in _test.go files: the package has no API.
package sqle2e
