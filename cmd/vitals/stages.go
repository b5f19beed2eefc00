package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/analytics"
	"github.com/vitalshq/vitals/analytics/loader"
	"github.com/vitalshq/vitals/api"
	"github.com/vitalshq/vitals/audit"
	"github.com/vitalshq/vitals/auth"
	"github.com/vitalshq/vitals/broker"
	"github.com/vitalshq/vitals/clientip"
	"github.com/vitalshq/vitals/config"
	"github.com/vitalshq/vitals/dashboard"
	"github.com/vitalshq/vitals/dispatcher"
	"github.com/vitalshq/vitals/endpoint"
	"github.com/vitalshq/vitals/health"
	"github.com/vitalshq/vitals/keyring"
	"github.com/vitalshq/vitals/ops"
	"github.com/vitalshq/vitals/processor"
	"github.com/vitalshq/vitals/processor/model"
	"github.com/vitalshq/vitals/producer"
	"github.com/vitalshq/vitals/replay"
	"github.com/vitalshq/vitals/schemas"
	"github.com/vitalshq/vitals/ssrf"
	"github.com/vitalshq/vitals/tlsconfig"
	"github.com/vitalshq/vitals/topics"
	"github.com/vitalshq/vitals/webhook"
)

// env is what every stage of one process shares.
type env struct {
	cfg     config.Config
	log     *slog.Logger
	brokers []string
	codec   *schemas.Codec
	reg     *prometheus.Registry
	checks  *ops.Checks
	g       *group

	replays *replay.Store // shared by the API and the dispatcher of one process
	// generateMaster lets masterKey create <data-dir>/master.key (run).
	generateMaster bool
	master         []byte           // the master key, once loaded
	keys           *keyring.Keyring // shared by every stage of one process
}

func (e *env) clientOpts(name string) []kgo.Opt {
	return broker.Options(e.brokers, "vitals-"+name, e.kafkaSecurity())
}

// kafkaSecurity is the TLS and SASL settings of the external cluster; the
// embedded broker is plaintext on loopback.
func (e *env) kafkaSecurity() broker.Security {
	c := e.cfg
	if len(c.KafkaBrokers) == 0 {
		return broker.Security{}
	}
	return broker.Security{
		TLS: c.KafkaTLS, TLSCAFile: c.KafkaTLSCA, TLSCertFile: c.KafkaTLSCert, TLSKeyFile: c.KafkaTLSKey,
		TLSServerName: c.KafkaTLSServerName,
		SASLMechanism: c.KafkaSASLMechanism, SASLUser: c.KafkaSASLUser, SASLPassword: c.KafkaSASLPassword,
	}
}

// prepareKafka checks the cluster answers and creates missing topics.
func (e *env) prepareKafka(ctx context.Context) error {
	cl, err := kgo.NewClient(e.clientOpts("admin")...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		return fmt.Errorf("kafka %v unreachable: %w", e.brokers, err)
	}
	specs := append(topics.All(int32(e.cfg.Partitions)), topics.RetryTiers(e.cfg.RetrySchedule, int32(e.cfg.Partitions))...)
	if err := broker.EnsureTopics(ctx, cl, specs); err != nil {
		return err
	}
	e.checks.Add("kafka", func(ctx context.Context) error {
		pc, err := kgo.NewClient(e.clientOpts("readyz")...)
		if err != nil {
			return err
		}
		defer pc.Close()
		return pc.Ping(ctx)
	})
	return nil
}

// readyTable is a materialized control-plane table.
type readyTable interface {
	Run(ctx context.Context) error
	WaitReady(ctx context.Context) error
}

// startTable runs t under the group and waits until it caught up.
func (e *env) startTable(ctx context.Context, name string, t readyTable) error {
	e.g.Go(name, t.Run)
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := t.WaitReady(wctx); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	e.checks.Add(name, func(context.Context) error { return nil })
	return nil
}

func (e *env) endpoints(ctx context.Context) (*endpoint.Registry, error) {
	keys, err := e.keyring(ctx)
	if err != nil {
		return nil, err
	}
	reg, err := endpoint.NewRegistry(e.clientOpts("endpoints"),
		endpoint.WithSealer(keys), endpoint.WithLogger(e.log.With("component", "endpoints")))
	if err != nil {
		return nil, err
	}
	return reg, e.startTable(ctx, "endpoints", reg)
}

// replayStore returns the process's replay job store, started once.
func (e *env) replayStore(ctx context.Context) (*replay.Store, error) {
	if e.replays != nil {
		return e.replays, nil
	}
	st, err := replay.NewStore(e.clientOpts("replays"))
	if err != nil {
		return nil, err
	}
	if err := e.startTable(ctx, "replays", st); err != nil {
		return nil, err
	}
	e.replays = st
	return st, nil
}

// guard returns the SSRF guard of webhook URLs, with the egress proxy.
func (e *env) guard() (*ssrf.Guard, error) {
	opts := []ssrf.Option{ssrf.AllowPrivate(e.cfg.AllowPrivateEndpoints)}
	if e.cfg.EgressProxy != "" {
		u, err := url.Parse(e.cfg.EgressProxy)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("--egress-proxy %q: want a URL such as http://proxy.internal:3128", e.cfg.EgressProxy)
		}
		opts = append(opts, ssrf.EgressProxy(u))
	}
	return ssrf.New(opts...), nil
}

// startAPI wires and serves the HTTP API. It returns once the listener is
// bound, so callers can log where it listens.
func (e *env) startAPI(ctx context.Context, eps *endpoint.Registry) (net.Addr, error) {
	cfg := e.cfg
	keys, err := e.keyring(ctx)
	if err != nil {
		return nil, err
	}
	store, err := auth.NewKafkaStore(e.clientOpts("auth"), e.log, auth.WithKeySealer(keys))
	if err != nil {
		return nil, err
	}
	if err := e.startTable(ctx, "auth-store", store); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("api listen %s: %w", cfg.Listen, err)
	}
	publicURL := cfg.PublicURL
	scheme := "https"
	if cfg.InsecureHTTP {
		scheme = "http"
	}
	if publicURL == "" {
		publicURL = scheme + "://" + advertised(ln.Addr())
	}
	// TLS first: the certificate exists before the bootstrap file tells
	// clients where to connect.
	var tlsCfg *tls.Config
	if !cfg.InsecureHTTP {
		host, _, _ := net.SplitHostPort(cfg.Listen)
		tlsCfg, err = tlsconfig.Server(cfg.TLSCert, cfg.TLSKey, cfg.DataDir, []string{host, urlHost(publicURL)})
		if err != nil {
			ln.Close()
			return nil, err
		}
	} else {
		e.log.Warn("INSECURE: --insecure-http serves the API over plain HTTP; tokens and events travel in clear text. Use it for local development only.")
	}
	az, err := e.authorizationServer(ctx, publicURL, store)
	if err != nil {
		ln.Close()
		return nil, err
	}
	authSrv, provider := az.tokens, az.provider
	trusted, err := clientip.ParseTrusted(cfg.TrustedProxies)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("--trusted-proxies: %w", err)
	}
	resolver := clientip.NewResolver(trusted)
	bootstrapPath := filepath.Join(cfg.DataDir, "bootstrap-client.json")
	created, err := authSrv.Bootstrap(ctx, bootstrapPath, publicURL+"/oauth/token", publicURL)
	if err != nil {
		ln.Close()
		return nil, err
	}
	if err := e.bootstrapPeople(ctx, az, store, publicURL); err != nil {
		ln.Close()
		return nil, err
	}
	if created {
		e.log.Info("created the bootstrap OAuth client (all non-admin scopes); its credentials are in a 0600 file", "path", bootstrapPath)
	}
	states, err := model.NewStateCodec(e.codec)
	if err != nil {
		ln.Close()
		return nil, err
	}
	reader, err := health.NewReader(e.clientOpts("health"), states, e.log.With("component", "health"))
	if err != nil {
		ln.Close()
		return nil, err
	}
	if err := e.startTable(ctx, "health", reader); err != nil {
		ln.Close()
		return nil, err
	}
	replays, err := e.replayStore(ctx)
	if err != nil {
		ln.Close()
		return nil, err
	}
	queueClient, err := kgo.NewClient(e.clientOpts("replay-queue")...)
	if err != nil {
		ln.Close()
		return nil, err
	}
	guard, err := e.guard()
	if err != nil {
		ln.Close()
		queueClient.Close()
		return nil, err
	}
	prod, err := producer.New(e.clientOpts("api"), e.codec)
	if err != nil {
		ln.Close()
		return nil, err
	}
	traffic, closeTraffic, err := e.trafficControl(ctx, store)
	if err != nil {
		ln.Close()
		return nil, err
	}
	srv := api.New(api.Deps{
		Limiter:           traffic.Limiter,
		Admission:         traffic.Admission,
		Audit:             traffic.Audit,
		AuditQuery:        traffic.AuditQuery,
		Analytics:         traffic.Analytics,
		NonceCache:        traffic.NonceCache,
		Sealer:            e.keys,
		Auth:              authSrv,
		TokenHandler:      provider.TokenHandler(),
		JWKSHandler:       authSrv.JWKSHandler(),
		AuthorizeHandler:  provider.AuthorizeHandler(),
		RevokeHandler:     provider.RevokeHandler(),
		IntrospectHandler: provider.IntrospectHandler(),
		MetadataHandler:   provider.MetadataHandler(),
		Admin:             &api.Admin{Clients: store, Users: az.users, Keys: authSrv, Issuer: "Vitals"},
		Producer:          prod,
		Endpoints:         eps,
		Health:            reader,
		Replays:           replays,
		Tasks:             replay.NewQueue(queueClient, cfg.RetrySchedule[0]),
		Encoder:           e.codec,
		URLChecker:        guard,
		NewSecret:         webhook.NewSecret,
		Source: func(r *http.Request) string {
			if p, ok := auth.PrincipalFrom(r.Context()); ok {
				return p.ClientID
			}
			return ""
		},
		Registry: e.reg,
		Checks:   e.checks,
		Logger:   e.log.With("component", "api"),

		Dashboard:      dashboard.NewPage(),
		DashboardStats: dashboard.NewStats(e.reg, reader, dashboard.WithLogger(e.log.With("component", "dashboard"))),
	}, api.AllowInsecureEndpoints(cfg.AllowInsecureEndpoints), api.ClientIP(resolver))
	e.g.Go("api", func(ctx context.Context) error {
		defer prod.Close()
		defer queueClient.Close()
		defer closeTraffic() // after Serve: the last calls' audit records are flushed
		return srv.Serve(ctx, ln, tlsCfg)
	})
	e.log.Info("API listening", "addr", ln.Addr().String(), "url", publicURL, "tls", tlsCfg != nil, "token_url", publicURL+"/oauth/token")
	return ln.Addr(), nil
}

func (e *env) startProcessor() error {
	mcfg := model.DefaultConfig()
	if path := e.cfg.ModelConfig; path != "" {
		var err error
		if mcfg, err = model.LoadConfig(path); err != nil {
			return fmt.Errorf("--model-config: %w", err)
		}
		e.log.Info("health model tuned by file", "path", path)
	}
	states, err := model.NewStateCodec(e.codec)
	if err != nil {
		return err
	}
	opts := []processor.Option{
		processor.WithClientOptions(e.clientOpts("processor")...),
		processor.WithModelConfig(mcfg),
		processor.WithStateCodec(states),
		processor.WithLogger(e.log.With("component", "processor")),
		processor.WithRegisterer(e.reg),
	}
	if e.cfg.TransactionalID != "" {
		opts = append(opts, processor.WithTransactionalID(e.cfg.TransactionalID))
	}
	p, err := processor.New(e.codec, opts...)
	if err != nil {
		return err
	}
	e.g.Go("processor", p.Run)
	e.log.Info("processor started", "input", topics.CustomerEvents, "group", processor.DefaultGroup,
		"transactional_id", p.TransactionalID(), "exactly_once", true)
	return nil
}

func (e *env) startDispatcher(ctx context.Context, eps *endpoint.Registry) error {
	cfg := e.cfg
	w, err := e.analyticsWriter(ctx)
	if err != nil {
		return err
	}
	if err := e.startAuditLoader(); err != nil {
		return err
	}
	if err := e.startMonitoring(); err != nil {
		return err
	}
	if cfg.AllowPrivateEndpoints {
		e.log.Warn("INSECURE: --allow-private-endpoints lets webhooks reach loopback, private and link-local addresses. Use it for local development only.")
	}
	guard, err := e.guard()
	if err != nil {
		return err
	}
	breaker := dispatcher.DefaultBreakerSettings()
	breaker.OpenFor = cfg.BreakerOpen
	d, err := dispatcher.New(e.brokers, e.codec, eps,
		dispatcher.WithKafkaOptions(e.clientOpts("dispatcher")...),
		dispatcher.WithSink(w),
		dispatcher.WithStateSink(w),
		dispatcher.WithDisabler(eps),
		dispatcher.WithRetrySchedule(cfg.RetrySchedule...),
		dispatcher.WithBreakerSettings(breaker),
		dispatcher.WithSender(dispatcher.NewHTTPSender(dispatcher.Timeout(cfg.DeliveryTimeout), dispatcher.Guard(guard))),
		dispatcher.WithLogger(e.log.With("component", "dispatcher")),
		dispatcher.WithRegisterer(e.reg))
	if err != nil {
		return err
	}
	// The attempt log outlives the dispatcher: it stops only after the
	// dispatcher's last attempt was appended, so shutdown loses no row.
	replays, err := e.replayStore(ctx)
	if err != nil {
		return err
	}
	runner := replay.NewRunner(e.clientOpts("replay"), replays, eps, e.codec,
		replay.FirstDelay(cfg.RetrySchedule[0]), replay.Logger(e.log.With("component", "replay")))
	e.g.Go("replay", runner.Run)
	e.g.Go("dispatcher", func(ctx context.Context) error {
		dctx, stopDispatcher := context.WithCancel(ctx)
		defer stopDispatcher()
		wctx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
		werr := make(chan error, 1)
		go func() {
			err := w.Run(wctx)
			stopDispatcher() // a failed writer stops deliveries rather than lose their log
			werr <- err
		}()
		derr := d.Run(dctx)
		stopWriter()
		return errors.Join(derr, <-werr, w.Close())
	})
	e.log.Info("dispatcher started", "inputs", topics.Derived(), "group", dispatcher.DefaultGroup)
	return nil
}

func (e *env) analyticsWriter(ctx context.Context) (*analytics.Writer, error) {
	cfg := e.cfg
	keys, err := e.keyring(ctx)
	if err != nil {
		return nil, err
	}
	spool := filepath.Join(cfg.DataDir, "spool")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return nil, fmt.Errorf("analytics spool dir: %w", err)
	}
	if cfg.ClickHouseAddr == "" {
		e.log.Warn("no --clickhouse-addr: webhook attempts are written to the disk spool only, to be loaded into ClickHouse once it is configured", "spool", spool)
	} else {
		e.log.Info("analytics to ClickHouse", "addr", cfg.ClickHouseAddr, "database", cfg.ClickHouseDatabase, "spool", spool)
	}
	return analytics.NewWriter(cfg.ClickHouseAddr, append(e.clickHouseOpts(),
		analytics.WithSpoolDir(spool),
		analytics.WithSpoolSealer(keys), // attempt rows hold URLs and response excerpts
		analytics.WithSpoolLimit(cfg.SpoolLimit),
		analytics.WithMetrics(e.reg))...)
}

// clickHouseOpts are the connection settings of every ClickHouse client.
func (e *env) clickHouseOpts() []analytics.Option {
	cfg := e.cfg
	return []analytics.Option{
		analytics.WithDatabase(cfg.ClickHouseDatabase),
		analytics.WithAuth(cfg.ClickHouseUser, cfg.ClickHousePassword),
		analytics.WithTLS(analytics.TLS{Enabled: cfg.ClickHouseTLS, CAFile: cfg.ClickHouseTLSCA, ServerName: cfg.ClickHouseTLSServerName}),
		analytics.WithLogger(e.log.With("component", "analytics")),
	}
}

// startAuditLoader loads vitals.audit.v1 into ClickHouse api_audit (a
// consumer group: one loader per partition across dispatchers). Without
// ClickHouse the records wait in Kafka.
func (e *env) startAuditLoader() error {
	if e.cfg.ClickHouseAddr == "" {
		return nil
	}
	store, err := analytics.NewAuditStore(e.cfg.ClickHouseAddr, e.clickHouseOpts()...)
	if err != nil {
		return err
	}
	l, err := audit.NewLoader(e.clientOpts("audit-loader"), store, loader.WithLogger(e.log.With("component", "audit-loader")), loader.WithMetrics(e.reg))
	if err != nil {
		store.Close()
		return err
	}
	e.g.Go("audit-loader", func(ctx context.Context) error {
		defer store.Close()
		return l.Run(ctx)
	})
	// Derived events into derived_events (consumer group
	// vitals-derived-loader), for the analytics reports.
	ds, err := analytics.NewStore(e.cfg.ClickHouseAddr, e.clickHouseOpts()...)
	if err != nil {
		return err
	}
	dl, err := analytics.NewDerivedLoader(e.clientOpts("derived-loader"), e.codec, ds,
		loader.WithLogger(e.log.With("component", "derived-loader")), loader.WithMetrics(e.reg))
	if err != nil {
		ds.Close()
		return err
	}
	e.g.Go("derived-loader", func(ctx context.Context) error {
		defer ds.Close()
		return dl.Run(ctx)
	})
	return nil
}

// serveOps serves /healthz, /readyz and /metrics for stages without the API.
func (e *env) serveOps(ctx context.Context) error {
	if e.cfg.OpsListen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", e.cfg.OpsListen)
	if err != nil {
		return fmt.Errorf("ops listen %s: %w", e.cfg.OpsListen, err)
	}
	mux := http.NewServeMux()
	ops.Register(mux, e.reg, e.checks)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	e.g.Go("ops", func(ctx context.Context) error {
		go func() { <-ctx.Done(); hs.Close() }()
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	e.log.Info("ops endpoints listening", "url", "http://"+ln.Addr().String(), "paths", "/healthz /readyz /metrics")
	return nil
}

// advertised turns a bound address into one a local client can dial.
func advertised(a net.Addr) string {
	host, port, _ := net.SplitHostPort(a.String())
	ip := net.ParseIP(host)
	if ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func urlHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Hostname()
}
