package main

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vitalshq/vitals/admission"
	"github.com/vitalshq/vitals/analytics"
	"github.com/vitalshq/vitals/api"
	"github.com/vitalshq/vitals/audit"
	"github.com/vitalshq/vitals/auth"
	"github.com/vitalshq/vitals/httpsig"
	"github.com/vitalshq/vitals/ratelimit"
)

// trafficControl wires the API's rate limiter (memory, or Redis shared by
// every instance with --redis-addr), its admission controller and its
// audit log writer; close releases them.
func (e *env) trafficControl(ctx context.Context, clients auth.ClientStore) (d api.Deps, closeFn func(), err error) {
	var store ratelimit.Store = ratelimit.NewMemoryStore()
	var rdb *redis.Client
	if e.cfg.RedisAddr != "" {
		opts := ratelimit.RedisOptions(e.cfg.RedisAddr) // fail fast: the limiter's policy decides
		opts.Password = e.cfg.RedisPassword
		rdb = redis.NewClient(opts)
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		perr := rdb.Ping(pctx).Err()
		cancel()
		if perr != nil {
			// The limiter's fail policy covers an outage later; at start a
			// wrong address is a configuration error.
			rdb.Close()
			return api.Deps{}, nil, fmt.Errorf("--redis-addr %s: %w", e.cfg.RedisAddr, perr)
		}
		store = ratelimit.NewRedisStore(rdb)
		e.log.Info("rate limits shared through Redis", "addr", e.cfg.RedisAddr)
	}
	limits, err := ratelimit.ParseLimits(e.cfg.RateLimits)
	if err != nil {
		return api.Deps{}, nil, fmt.Errorf("%w: --rate-limit: %v", errUsage, err)
	}
	lim, err := ratelimit.New(store, ratelimit.WithLimits(limits), ratelimit.WithOverrides(auth.RateLimitOverrides{Clients: clients}),
		ratelimit.WithLogger(e.log.With("component", "ratelimit")), ratelimit.WithRegisterer(e.reg))
	if err != nil {
		return api.Deps{}, nil, err
	}
	adm, err := admission.New(admission.WithRegisterer(e.reg), admission.WithLogger(e.log.With("component", "admission")))
	if err != nil {
		return api.Deps{}, nil, err
	}
	aw, err := audit.NewWriter(e.clientOpts("audit"), audit.WithLogger(e.log.With("component", "audit")), audit.WithMetrics(e.reg))
	if err != nil {
		return api.Deps{}, nil, err
	}
	d = api.Deps{Limiter: lim, Admission: adm, Audit: aw}
	if rdb != nil {
		// Signature nonces are shared too, so a request replayed to
		// another instance is refused.
		d.NonceCache = httpsig.NewRedisNonceCache(rdb, httpsig.DefaultRedisNoncePrefix)
	}
	var (
		auditStore     *analytics.AuditStore
		analyticsStore *analytics.Store
	)
	if e.cfg.ClickHouseAddr != "" {
		if auditStore, err = analytics.NewAuditStore(e.cfg.ClickHouseAddr, e.clickHouseOpts()...); err != nil {
			return api.Deps{}, nil, err
		}
		d.AuditQuery = auditStore
		if analyticsStore, err = analytics.NewStore(e.cfg.ClickHouseAddr, e.clickHouseOpts()...); err != nil {
			return api.Deps{}, nil, err
		}
		d.Analytics = analyticsStore
	}
	closeFn = func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = aw.Close(cctx)
		if rdb != nil {
			rdb.Close()
		}
		if auditStore != nil {
			auditStore.Close()
			analyticsStore.Close()
		}
	}
	return d, closeFn, nil
}
