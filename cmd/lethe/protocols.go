package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/lethe-privacy/lethe/internal/clients"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/httpapi"
	"github.com/lethe-privacy/lethe/internal/intake"
	"github.com/lethe-privacy/lethe/internal/pipeline"
	"github.com/lethe-privacy/lethe/internal/profile/drp"
	"github.com/lethe-privacy/lethe/internal/profile/opendsr"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
	"github.com/lethe-privacy/lethe/internal/seal"
	"github.com/lethe-privacy/lethe/internal/store"
)

// protocols holds what the DRP and OpenDSR profiles need before the
// pipeline is built: their callback formats, which render and sign the
// status events of the requests they took.
type protocols struct {
	opendsrSigner *opendsr.Signer // nil when the profile is off
	formats       map[string]pipeline.CallbackFormat
}

func loadProtocols(ctx context.Context, cfg *config.Config, st store.Store, log *slog.Logger) (*protocols, error) {
	// DRP's format is there even when the profile is off, so requests it
	// took while on keep their callbacks; it needs no key.
	p := &protocols{formats: map[string]pipeline.CallbackFormat{drp.FormatName: drp.Format{Keep: drpKeep(cfg)}}}
	if cfg.OpenDSR.Enabled {
		s, created, err := opendsr.LoadSigner(ctx, st, cfg.OpenDSR.Domain, cfg.OpenDSR.CertificateFile, cfg.OpenDSR.KeyFile, time.Now())
		if err != nil {
			return nil, err
		}
		if created {
			log.Warn("opendsr: generated a signing key with a self-signed certificate; OpenDSR requires a CA-issued one in production (opendsr.certificate_file, opendsr.key_file)")
		}
		p.opendsrSigner = s
		p.formats[opendsr.FormatName] = opendsr.Format{Signer: s, Domain: cfg.OpenDSR.Domain}
	}
	return p, nil
}

// drpKeep is how long a DRP request's record stays after it ends: as long as
// lethe keeps request details.
func drpKeep(cfg *config.Config) time.Duration {
	if cfg.Retention.RequestDetails > 0 {
		return cfg.Retention.RequestDetails
	}
	return drp.DefaultKeep
}

// withFormats adds the profiles' callback formats to c.
func (p *protocols) withFormats(c pipeline.CallbackConfig) pipeline.CallbackConfig {
	c.Formats = p.formats
	return c
}

func (p *protocols) profiles(ctx context.Context, cfg *config.Config, in *intake.Service, cl *clients.Service, st store.Store, keys *seal.Keyring, limiter ratelimit.Limiter, rules map[string]ratelimit.Rules, log *slog.Logger) ([]httpapi.Profile, error) {
	var out []httpapi.Profile
	if cfg.DRP.Enabled {
		if err := drp.RegisterAgents(ctx, cl, cfg.DRP.AgentKeys()); err != nil {
			return nil, err
		}
		h, err := drp.New(drp.Options{
			Intake: in, Clients: cl, Store: st, Limiter: limiter, BusinessID: cfg.DRP.BusinessID,
			Rules: rules[config.ProfileDRP], ClockSkew: cfg.DRP.ClockSkew, Keep: drpKeep(cfg),
			MaxBodyBytes: cfg.HTTP.MaxBodyBytes, Logger: log,
		})
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	if cfg.OpenDSR.Enabled {
		h, err := opendsr.New(opendsr.Options{
			Intake: in, Clients: cl, Store: st, Keyring: keys, Limiter: limiter, Signer: p.opendsrSigner,
			Domain: cfg.OpenDSR.Domain, Rules: rules[config.ProfileOpenDSR], MaxBodyBytes: cfg.HTTP.MaxBodyBytes, Logger: log,
		})
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}
