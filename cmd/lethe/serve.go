package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/processor"
	"github.com/lethe-privacy/lethe/connector/redisconn"
	"github.com/lethe-privacy/lethe/connector/sqlconn"
	"github.com/lethe-privacy/lethe/connector/webhook"
	"github.com/lethe-privacy/lethe/internal/clients"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/httpapi"
	"github.com/lethe-privacy/lethe/internal/intake"
	"github.com/lethe-privacy/lethe/internal/metrics"
	"github.com/lethe-privacy/lethe/internal/pipeline"
	"github.com/lethe-privacy/lethe/internal/profile/connect"
	"github.com/lethe-privacy/lethe/internal/profile/s2s"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
	"github.com/lethe-privacy/lethe/internal/store"
)

// httpShutdownTimeout bounds how long in-flight HTTP requests may finish
// after SIGTERM; intake is short, so this is small.
const httpShutdownTimeout = 10 * time.Second

// registry lists the connector kinds this binary knows. Registration is
// explicit so the list of what lethe can reach is in one place.
func registry() (*connector.Registry, error) {
	return connector.NewRegistry(sqlconn.Info(), redisconn.Info(), webhook.Info(),
		processor.S2SInfo(), processor.ConnectInfo())
}

func newServeCmd(g *globals) *cobra.Command {
	var (
		listen    string
		ratelimit string
		demo      bool
		roleName  string
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the API and the deletion pipeline (migrates the database first)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if demo {
				if err := setupDemo(cmd.Context(), g, listen, cmd.OutOrStdout(), log); err != nil { // demo.go
					return err
				}
			}
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			if listen != "" {
				cfg.Listen = listen
			}
			r, err := parseRole(roleName) // role.go
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg, ratelimit, r, g.env, log)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "HTTP address host:port (env LETHE_LISTEN; default 127.0.0.1:8080)")
	cmd.Flags().BoolVar(&demo, "demo", false, "create (or reuse) a demo shop database, client and admin token beside the database, serve them, and print a walkthrough")
	cmd.Flags().StringVar(&roleName, "role", string(roleAll), "what this process does: all (API and pipeline), api (API only; enqueues jobs) or worker (pipeline, plus /healthz, /readyz and /metrics); api and worker need PostgreSQL (env LETHE_ROLE)")
	cmd.Flags().StringVar(&ratelimit, "ratelimit", "", "rate limit state: empty keeps it in the database; redis://host:port/db uses Redis (env LETHE_RATELIMIT)")
	return cmd
}

// serve runs until ctx ends (SIGTERM or SIGINT), then shuts down in order:
// stop accepting HTTP requests, let running jobs finish within the
// configured bound (the rest are released and retried after a restart),
// then close connections.
func serve(ctx context.Context, cfg *config.Config, rateLimitURL string, r role, env lookupEnv, log *slog.Logger) error {
	st, keys, err := openStore(ctx, cfg.DB, env, log, cfg.Workers.Concurrency)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := checkRole(r, st.Dialect()); err != nil {
		return err
	}
	if err := migrate(ctx, st); err != nil {
		return err
	}
	signer, err := loadSigner(ctx, st, keys, env, log) // audit.go
	if err != nil {
		return err
	}

	targets, closeTargets, err := openTargets(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeTargets()
	if err := checkDataMap(ctx, targets, log); err != nil {
		return err
	}

	names := make([]string, len(targets))
	for i, t := range targets {
		names[i] = t.Name
	}
	// The metrics observe the pipeline, and read its queue depth on scrape.
	var pipe *pipeline.Pipeline
	m := metrics.New(metrics.Options{
		CountRequests: st.CountRequestsByStatus,
		QueueDepth:    func(ctx context.Context) (int64, error) { return pipe.QueueDepth(ctx) },
		CountDeadlines: func(ctx context.Context) (int64, int64, error) {
			return pipe.CountDeadlines(ctx)
		},
		Targets: names,
		Logger:  log,
	})
	pipe, err = pipeline.New(pipeline.Config{
		Workers:     cfg.Workers.Concurrency,
		MaxAttempts: cfg.Workers.MaxAttempts,
		BackoffBase: cfg.Workers.BackoffBase,
		BackoffMax:  cfg.Workers.BackoffMax,
		JobTimeout:  cfg.Workers.JobTimeout,
		// 0 (unset) is JobTimeout + 1m, the pipeline's default.
		RescueStuckJobsAfter: cfg.Workers.RescueAfter,
		MaxIdentities:        cfg.Resolve.MaxIdentities,
		Signer:               signer,
		Retention:            &pipeline.Retention{RequestDetails: cfg.Retention.RequestDetails, Legal: cfg.Retention.Legal},
		Callbacks:            callbackConfig(cfg, keys), // callbacks.go
		Suppression:          cfg.Suppression.Enabled,
		Deadlines:            &pipeline.Deadlines{WarnBefore: cfg.Deadlines.WarnBefore, Interval: cfg.Deadlines.SweepInterval},
		InsertOnly:           !r.works(),
	}, st, targets, log, m)
	if err != nil {
		return err
	}

	limiter, closeLimiter, err := ratelimit.Open(ctx, rateLimitURL, st, time.Now)
	if err != nil {
		return err
	}
	defer closeLimiter()

	in := intake.New(st, pipe, keys, intake.Config{Deadlines: cfg.Regulations, Terminator: pipe, CallbackURLs: callbackURLs(cfg)})
	cl, err := clients.New(st, keys, clients.Config{})
	if err != nil {
		return err
	}
	rules, err := limitRules(ctx, st, cfg.RateLimits, log)
	if err != nil {
		return err
	}
	s2sProfile, err := s2s.New(s2s.Options{Intake: in, Clients: cl, Limiter: limiter, Rules: rules[config.ProfileS2S], MaxBodyBytes: cfg.HTTP.MaxBodyBytes, Logger: log})
	if err != nil {
		return err
	}
	connectProfile, err := connect.New(connect.Options{Intake: in, Clients: cl, Store: st, Keyring: keys, Limiter: limiter, Rules: rules[config.ProfileConnect], MaxBodyBytes: cfg.HTTP.MaxBodyBytes, Logger: log})
	if err != nil {
		return err
	}
	api := httpapi.New(httpapi.Options{
		Intake: in,
		Store:  st,
		Auth: []httpapi.Authenticator{
			limitedAdmin{httpapi.AdminToken(cfg.AdminToken), limiter, rules[config.ProfileNative].Default},
			cl.NativeAuthenticator(limiter, rules[config.ProfileNative]),
		},
		Ready: func(ctx context.Context) error {
			if err := st.Ready(ctx); err != nil {
				return err
			}
			return pipeline.CheckMigrations(ctx, st)
		},
		Metrics:      m.Handler(),
		Logger:       log,
		MaxBodyBytes: cfg.HTTP.MaxBodyBytes,
		Mount:        []func(*http.ServeMux){s2sProfile.Mount, connectProfile.Mount},
		Observer:     m,
		Plan:         apiPlanner(pipe), // plan.go
		CompleteTask: pipe,             // targets confirming an erasure: POST /v1/tasks/{token}/complete
		Suppression:  cfg.Suppression.Enabled,
		Timeouts:     httpTimeouts(cfg.HTTP), // role.go
	})
	if !r.servesAPI() {
		// A worker answers probes and scrapes only; the API built above
		// stays unused (building it costs nothing but a few objects).
		api = httpapi.NewProbes(httpapi.Options{
			Ready:    func(ctx context.Context) error { return pipe.Ready(ctx) },
			Metrics:  m.Handler(),
			Logger:   log,
			Observer: m,
			Timeouts: httpTimeouts(cfg.HTTP),
		})
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := api.HTTPServer(cfg.Listen)

	// Jobs run on their own context: SIGTERM must not cancel them mid-way
	// but let them finish within the shutdown bound.
	if err := pipe.Start(context.WithoutCancel(ctx)); err != nil {
		ln.Close()
		return err
	}
	if cfg.AdminToken == "" {
		log.Warn("no admin token is set (LETHE_ADMIN_TOKEN): the admin API answers 401 to everyone")
	}
	log.Info("lethe serving", "addr", ln.Addr().String(), "role", string(r), "db", st.Dialect(), "targets", len(targets), "version", version)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		log.Error("http server stopped", "err", err)
	case <-ctx.Done():
		log.Info("shutting down: no new requests accepted")
	}

	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), httpShutdownTimeout)
	err = srv.Shutdown(hctx)
	cancel()
	if err != nil {
		log.Warn("http shutdown", "err", err)
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Workers.ShutdownTimeout)
	defer cancel()
	if err := pipe.Stop(pctx); err != nil {
		log.Warn("pipeline shutdown", "err", err)
	}
	log.Info("stopped")
	return nil
}

// openTargets builds and validates a connector for every target of the
// data map; a target that cannot be reached or does not match its map
// stops the start, before any request runs against it.
func openTargets(ctx context.Context, cfg *config.Config) ([]pipeline.Target, func(), error) {
	reg, err := registry()
	if err != nil {
		return nil, nil, err
	}
	var targets []pipeline.Target
	closeAll := func() {
		for _, t := range targets {
			if c, ok := t.Conn.(connector.Closer); ok {
				c.Close()
			}
		}
	}
	for _, t := range cfg.ConnectorTargets() {
		c, err := reg.New(ctx, t)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		targets = append(targets, pipeline.Target{Name: t.Name, Conn: c})
		if v, ok := c.(connector.Validator); ok {
			if err := v.Validate(ctx); err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("target %q: %w", t.Name, err)
			}
		}
	}
	return targets, closeAll, nil
}

// limitRules turns the configured limits into per-profile rules. Per-client
// overrides are keyed by client name in the file and by id at run time;
// a name without a client yet is reported and takes effect after a restart.
func limitRules(ctx context.Context, st store.Clients, rl config.RateLimits, log *slog.Logger) (map[string]ratelimit.Rules, error) {
	rule := func(l config.Limit) ratelimit.Rule {
		return ratelimit.Rule{Limit: l.Limit, Window: l.Window, Block: l.Block}
	}
	out := map[string]ratelimit.Rules{}
	for _, p := range []string{config.ProfileNative, config.ProfileConnect, config.ProfileS2S} {
		out[p] = ratelimit.Rules{Default: rule(rl.For(p, "")), PerClient: map[string]ratelimit.Rule{}}
	}
	for name := range rl.Clients {
		c, err := st.GetClientByName(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			log.Warn("rate_limits.clients names a client that does not exist (yet); restart after creating it", "client", name)
			continue
		} else if err != nil {
			return nil, fmt.Errorf("rate limits: %w", err)
		}
		for p := range out {
			out[p].PerClient[c.ID] = rule(rl.For(p, name))
		}
	}
	return out, nil
}

// limitedAdmin rate-limits the admin like one client of the native API.
type limitedAdmin struct {
	auth    httpapi.Authenticator
	limiter ratelimit.Limiter
	rule    ratelimit.Rule
}

func (a limitedAdmin) Authenticate(ctx context.Context, r *http.Request) (httpapi.Principal, error) {
	p, err := a.auth.Authenticate(ctx, r)
	if err != nil {
		return p, err
	}
	ok, retry, err := a.limiter.Allow(ctx, "native:admin", a.rule)
	if err != nil {
		return httpapi.Principal{}, err
	}
	if !ok {
		return httpapi.Principal{}, httpapi.RateLimited(retry, "too many requests; retry later")
	}
	return p, nil
}
