package main

import (
	"fmt"

	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/httpapi"
)

// role is what one `lethe serve` process does. Processes of any roles
// sharing one PostgreSQL database are one service: the API enqueues jobs
// in the database, whichever worker is free runs them, and River elects
// one worker process as leader for the periodic jobs (purge, deadline
// sweep) and for rescuing the jobs of dead processes.
type role string

const (
	// roleAll serves the API and runs the pipeline: the default, and the
	// only role on SQLite.
	roleAll role = "all"
	// roleAPI serves the API and only enqueues jobs; it runs none and
	// never becomes leader, so it can scale with intake traffic alone.
	roleAPI role = "api"
	// roleWorker runs the pipeline and serves only /healthz, /readyz and
	// /metrics on the listen address.
	roleWorker role = "worker"
)

func parseRole(s string) (role, error) {
	switch r := role(s); r {
	case roleAll, roleAPI, roleWorker:
		return r, nil
	}
	return "", fmt.Errorf("--role must be all, api or worker")
}

// servesAPI reports whether the role answers API calls.
func (r role) servesAPI() bool { return r != roleWorker }

// works reports whether the role runs pipeline jobs.
func (r role) works() bool { return r != roleAPI }

// checkRole refuses split roles on SQLite. SQLite is the one-machine
// mode: every process shares one file and one write lock, so a second
// process adds no throughput, only lock contention, and an api process
// alone would accept requests nobody works. One `lethe serve` (role all)
// is the supported SQLite deployment; move to PostgreSQL to split roles.
func checkRole(r role, dialect string) error {
	if r != roleAll && dialect == "sqlite" {
		return fmt.Errorf("--role %s needs PostgreSQL (db: postgres://...); with SQLite run a single lethe serve with --role all", r)
	}
	return nil
}

// httpTimeouts are the server limits of the configuration.
func httpTimeouts(c config.HTTP) httpapi.Timeouts {
	return httpapi.Timeouts{
		ReadHeader: c.ReadHeaderTimeout,
		Read:       c.ReadTimeout,
		Write:      c.WriteTimeout,
		Idle:       c.IdleTimeout,
	}
}
