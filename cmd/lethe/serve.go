package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/httprecipe"
	"github.com/lethe-privacy/lethe/connector/manual"
	"github.com/lethe-privacy/lethe/connector/processor"
	"github.com/lethe-privacy/lethe/connector/redisconn"
	"github.com/lethe-privacy/lethe/connector/sqlconn"
	"github.com/lethe-privacy/lethe/connector/webhook"
	"github.com/lethe-privacy/lethe/internal/clients"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/console"
	"github.com/lethe-privacy/lethe/internal/http/auth"
	"github.com/lethe-privacy/lethe/internal/httpapi"
	"github.com/lethe-privacy/lethe/internal/intake"
	"github.com/lethe-privacy/lethe/internal/metrics"
	"github.com/lethe-privacy/lethe/internal/operators"
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
	return connector.NewRegistry(sqlconn.Info(), redisconn.Info(), webhook.Info(), manual.Info(),
		processor.S2SInfo(), processor.ConnectInfo(), httprecipe.Info())
}

func newServeCmd(g *globals) *cobra.Command {
	var (
		listen   string
		demo     bool
		roleName string
		opts     serveOptions
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
			// Flags are checked before the demo creates anything.
			if opts.role, err = parseRole(roleName); err != nil {
				return err
			}
			if opts.tls, err = loadTLS(opts.tlsCert, opts.tlsKey); err != nil {
				return err
			}
			if demo {
				if err := setupDemo(cmd.Context(), g, listen, cmd.OutOrStdout(), log); err != nil {
					return err
				}
			}
			cfg, err := g.loadConfig()
			if cfg != nil {
				// The targets' options are checked in the same pass as
				// the file, so one run reports every problem.
				err = errors.Join(err, checkTargets(cmd.Context(), cfg))
			}
			if err != nil {
				return err
			}
			if listen != "" {
				cfg.Listen = listen
			}
			return serve(cmd.Context(), cfg, opts, g.env, log)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "HTTP address host:port (env LETHE_LISTEN; default 127.0.0.1:8080)")
	cmd.Flags().BoolVar(&demo, "demo", false, "create (or reuse) a demo shop database, client and admin token beside the database, serve them, and print a walkthrough")
	cmd.Flags().StringVar(&roleName, "role", string(roleAll), "what this process does: all (API and pipeline), api (API only; enqueues jobs) or worker (pipeline, plus /healthz, /readyz and /metrics); api and worker need PostgreSQL (env LETHE_ROLE)")
	cmd.Flags().StringVar(&opts.rateLimitURL, "ratelimit", "", "rate limit state: memory (default on SQLite), database (default on PostgreSQL) or redis://host:port/db (env LETHE_RATELIMIT)")
	cmd.Flags().StringVar(&opts.nodeID, "node-id", "", "this node's name for the job queue, stable across its restarts and unique among running nodes: jobs it left running when it died are resumed at its restart (env LETHE_NODE_ID; default host name and listen address)")
	cmd.Flags().StringVar(&opts.tlsCert, "tls-cert", "", "serve HTTPS (HTTP/2 and HTTP/1.1) with this PEM certificate chain; needs --tls-key (env LETHE_TLS_CERT)")
	cmd.Flags().StringVar(&opts.tlsKey, "tls-key", "", "the PEM private key of --tls-cert (env LETHE_TLS_KEY)")
	return cmd
}

// serveOptions are serve's settings that come from flags, not the config
// file.
type serveOptions struct {
	rateLimitURL    string
	role            role
	nodeID          string
	tlsCert, tlsKey string
	tls             *tls.Config // nil: plain HTTP
}

// defaultNodeID names a node by its host and listen address: stable across
// restarts, and no two running processes on one host can listen on the
// same address. River takes at most 100 characters. A port chosen by the
// system (":0") is no name: then River's random id is used, and orphans
// wait for its rescuer.
func defaultNodeID(listen string) string {
	if _, port, err := net.SplitHostPort(listen); err != nil || port == "0" {
		return ""
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	id := host + "/" + listen
	if len(id) > 100 {
		sum := sha256.Sum256([]byte(id))
		id = id[:67] + "-" + hex.EncodeToString(sum[:16])
	}
	return id
}

// serve runs until ctx ends (SIGTERM or SIGINT), then shuts down in order:
// stop accepting HTTP requests, let running jobs finish within the
// configured bound (the rest are released and retried after a restart),
// then close connections.
func serve(ctx context.Context, cfg *config.Config, opts serveOptions, env lookupEnv, log *slog.Logger) error {
	r := opts.role
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
	signer, err := loadSigner(ctx, st, keys, env, log)
	if err != nil {
		return err
	}

	protocols, err := loadProtocols(ctx, cfg, st, log)
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
	nodeID := opts.nodeID
	if nodeID == "" {
		nodeID = defaultNodeID(cfg.Listen)
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
		Retention: &pipeline.Retention{RequestDetails: cfg.Retention.RequestDetails, Legal: cfg.Retention.Legal, Register: cfg.Retention.Register,
			FailedOpen: cfg.Retention.FailedOpen},
		Callbacks:   protocols.withFormats(callbackConfig(cfg, keys)),
		Suppression: cfg.Suppression.Enabled,
		Deadlines:   &pipeline.Deadlines{WarnBefore: cfg.Deadlines.WarnBefore, Interval: cfg.Deadlines.SweepInterval},
		Review: pipeline.Review{
			ApproveRegulations: cfg.Review.ApproveRegulations, ApproveClients: cfg.Review.ApproveClients,
			WaitingPeriod: cfg.Review.WaitingPeriod, SweepInterval: cfg.Review.SweepInterval,
		},
		InsertOnly: !r.works(),
		NodeID:     nodeID,
	}, st, targets, log, m)
	if err != nil {
		return err
	}

	limiter, closeLimiter, err := ratelimit.Open(ctx, opts.rateLimitURL, st, time.Now)
	if err != nil {
		return err
	}
	defer closeLimiter()

	writable := storeWritable(st, cfg.DB)
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
	ops := operators.NewService(st, keys, nil)
	consoleTargets := make([]console.Target, len(cfg.Targets))
	for i, t := range cfg.Targets {
		consoleTargets[i] = console.Target{Name: t.Name, Kind: t.Kind}
	}
	cons, err := console.New(console.Options{
		Store: st, Operators: ops, Intake: in, Keys: keys, Actions: pipe, Clients: cl,
		Targets: consoleTargets, Deadlines: pipe.CountDeadlines, NodeID: nodeID, Logger: log,
	})
	if err != nil {
		return err
	}
	profiles := []httpapi.Profile{s2sProfile, connectProfile, cons}
	more, err := protocols.profiles(ctx, cfg, in, cl, st, keys, limiter, rules, log)
	if err != nil {
		return err
	}
	profiles = append(profiles, more...)
	api := httpapi.New(httpapi.Options{
		Intake: in,
		Store:  st,
		Auth: []auth.Authenticator{
			auth.Limited(auth.AdminToken(cfg.AdminToken), limiter, httpapi.RateLimitPrefix, rules[config.ProfileNative]),
			auth.Limited(auth.OperatorTokens(ops), limiter, httpapi.RateLimitPrefix, rules[config.ProfileNative]),
			auth.Limited(httpapi.ClientTokens(cl), limiter, httpapi.RateLimitPrefix, rules[config.ProfileNative]),
		},
		Ready: func(ctx context.Context) error {
			if err := st.Ready(ctx); err != nil {
				return err
			}
			if err := pipeline.CheckMigrations(ctx, st); err != nil {
				return err
			}
			return writable(ctx)
		},
		Metrics:      m.Handler(),
		Logger:       log,
		MaxBodyBytes: cfg.HTTP.MaxBodyBytes,
		Profiles:     profiles,
		Observer:     m,
		Plan:         apiPlanner(pipe),
		CompleteTask: pipe, // targets confirming an erasure: POST /v1/tasks/{token}/complete
		Actions:      pipe, // operators' actions on requests
		Extend:       pipe, // POST /v1/deletion-requests/{id}/extend
		Suppression:  cfg.Suppression.Enabled,
		Timeouts:     httpTimeouts(cfg.HTTP),
	})
	if !r.servesAPI() {
		// A worker answers probes and scrapes only; the API built above
		// stays unused (building it costs nothing but a few objects).
		api = httpapi.NewProbes(httpapi.Options{
			Ready: func(ctx context.Context) error {
				if err := pipe.Ready(ctx); err != nil {
					return err
				}
				return writable(ctx)
			},
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
	srv.TLSConfig = opts.tls

	// Jobs run on their own context: SIGTERM must not cancel them mid-way
	// but let them finish within the shutdown bound.
	if err := pipe.Start(context.WithoutCancel(ctx)); err != nil {
		ln.Close()
		return err
	}
	if r.servesAPI() {
		// Console imports stop with the server; an import cut mid-batch
		// is resumed from its last recorded batch (by this node at its
		// restart or by another once the lease runs out).
		go cons.RunImports(ctx)
	}
	if cfg.AdminToken == "" {
		log.Warn("no admin token is set (LETHE_ADMIN_TOKEN): the admin API answers 401 to everyone")
	}
	scheme := "http"
	if opts.tls != nil {
		scheme = "https"
	}
	log.Info("lethe serving", "addr", ln.Addr().String(), "scheme", scheme, "role", string(r), "db", st.Dialect(), "targets", len(targets), "node", nodeID, "version", version)

	serveErr := make(chan error, 1)
	go func() {
		if opts.tls != nil {
			// The certificate is in TLSConfig; ServeTLS adds HTTP/2.
			serveErr <- srv.ServeTLS(ln, "", "")
			return
		}
		serveErr <- srv.Serve(ln)
	}()

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
				return nil, nil, connector.TargetError(t.Name, err)
			}
		}
	}
	return targets, closeAll, nil
}

// checkTargets decodes every target's options as serve will, without
// connecting to anything, and returns all their problems at once.
func checkTargets(ctx context.Context, cfg *config.Config) error {
	reg, err := registry()
	if err != nil {
		return err
	}
	var errs []error
	for _, t := range cfg.ConnectorTargets() {
		c, err := reg.New(ctx, t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if cl, ok := c.(connector.Closer); ok {
			cl.Close()
		}
	}
	return errors.Join(errs...)
}

// limitRules turns the configured limits into per-profile rules. Per-client
// overrides are keyed by client name in the file and by id at run time;
// a name without a client yet is reported and takes effect after a restart.
func limitRules(ctx context.Context, st store.Clients, rl config.RateLimits, log *slog.Logger) (map[string]ratelimit.Rules, error) {
	rule := func(l config.Limit) ratelimit.Rule {
		return ratelimit.Rule{Limit: l.Limit, Window: l.Window, Block: l.Block}
	}
	out := map[string]ratelimit.Rules{}
	for _, p := range config.Profiles {
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
