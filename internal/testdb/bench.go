package testdb

import (
	"syscall"
	"testing"
	"time"
)

// PerRequest runs run, which does the benchmark's b.N requests, and
// reports the process's CPU per request ("cpu-ms/req": user and system
// time from getrusage; a SQLite store runs in the process, a PostgreSQL
// server does not) and requests per second over run alone.
func PerRequest(b *testing.B, run func()) {
	b.Helper()
	b.ResetTimer()
	cpu0, t0 := cpuTime(), time.Now()
	run()
	cpu, took := cpuTime()-cpu0, time.Since(t0)
	b.StopTimer()
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/req")
	b.ReportMetric(float64(b.N)/took.Seconds(), "req/s")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
