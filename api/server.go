package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vitalshq/vitals/admission"
	"github.com/vitalshq/vitals/audit"
	"github.com/vitalshq/vitals/auth"
	"github.com/vitalshq/vitals/clientip"
	"github.com/vitalshq/vitals/dispatcher/task"
	"github.com/vitalshq/vitals/endpoint"
	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/health"
	"github.com/vitalshq/vitals/httpsig"
	"github.com/vitalshq/vitals/ops"
	"github.com/vitalshq/vitals/problem"
	"github.com/vitalshq/vitals/replay"
	"github.com/vitalshq/vitals/webhook"
)

// Authorizer checks a request's access token (package auth's Server):
// Authorize for a scope, Authenticate for any, CheckMFA and CheckUser for
// people's routes; Deny answers a refusal.
type Authorizer interface {
	Authorize(r *http.Request, scope string) (auth.Principal, error)
	Authenticate(r *http.Request) (auth.Principal, error)
	CheckMFA(p auth.Principal, maxAge time.Duration) error
	CheckUser(p auth.Principal) error
	Deny(w http.ResponseWriter, r *http.Request, scope string, p auth.Principal, err error)
}

// Producer accepts validated customer events and returns once they are
// durable (package producer).
type Producer interface {
	Produce(ctx context.Context, evs []event.CustomerEvent) error
}

// Endpoints is the endpoint registry (package endpoint's Registry).
type Endpoints interface {
	Put(ctx context.Context, e endpoint.Endpoint) error
	Delete(ctx context.Context, id string) error
	Get(id string) (endpoint.Endpoint, bool)
	List() []endpoint.Endpoint
}

// Health is the customer health read model (package health's Reader).
type Health interface {
	Get(customerID string) (health.View, bool)
}

// URLChecker vets webhook URLs at registration (package ssrf's Guard).
type URLChecker interface {
	CheckURL(ctx context.Context, rawURL string) error
}

// Replays stores replay jobs (package replay's Store).
type Replays interface {
	Put(ctx context.Context, j replay.Job) error
	Get(id string) (replay.Job, bool)
}

// Tasks queues delivery tasks for the dispatcher (package replay's Queue).
type Tasks interface {
	Enqueue(ctx context.Context, t task.Task) error
}

// Encoder encodes derived events to their record value (package schemas'
// Codec), for test events.
type Encoder interface {
	EncodeDerived(d event.Derived) ([]byte, error)
}

// Deps are the collaborators a Server routes to. All are required except
// the OAuth handlers (TokenHandler … MetadataHandler), mounted when set; Replays and
// Tasks (replay routes) and Tasks and Encoder (test route), which are
// routed when set; and NewSigningKey (default webhook.NewEd25519Key).
type Deps struct {
	Auth              Authorizer
	TokenHandler      http.Handler // POST /oauth/token
	JWKSHandler       http.Handler // GET /.well-known/jwks.json
	AuthorizeHandler  http.Handler // GET, POST /oauth/authorize (code flow sign-in)
	RevokeHandler     http.Handler // POST /oauth/revoke
	IntrospectHandler http.Handler // POST /oauth/introspect
	MetadataHandler   http.Handler // GET /.well-known/oauth-authorization-server
	Producer          Producer
	Endpoints         Endpoints
	Health            Health
	URLChecker        URLChecker
	NewSecret         func() (string, error) // webhook signing secrets, "whsec_…"
	// NewSigningKey makes ed25519 keys for "signing":"ed25519" endpoints:
	// the base64 seed (stored) and public key (shown).
	NewSigningKey func() (seedB64, publicB64 string, err error)
	Replays       Replays
	Tasks         Tasks
	// Admin routes /v1/admin and /v1/me when set.
	Admin *Admin
	// Traffic control, each optional: per-client rate limits, overload
	// shedding, request signatures of high-value routes, the audit log.
	Limiter    Limiter
	Admission  Admission
	Signatures SignatureVerifier
	Audit      AuditLog
	// NonceCache remembers signature nonces (default: memory; Redis to
	// share them between instances). Signatures are checked against the
	// keys registered through Admin when Signatures is nil.
	NonceCache httpsig.NonceCache
	// Sealer keeps registered HMAC request secrets sealed at rest.
	Sealer Sealer
	// Analytics serves GET /v1/analytics/{report} when set.
	Analytics Analytics
	// AuditQuery serves GET /v1/audit when set.
	AuditQuery AuditQuerier
	Encoder    Encoder
	Source     func(*http.Request) string
	Registry   *prometheus.Registry
	Checks     *ops.Checks
	Logger     *slog.Logger

	// Dashboard serves the built-in live page, GET /dashboard and
	// /dashboard/{file} (package dashboard's page), and DashboardStats the
	// figures it polls, GET /v1/dashboard/stats (scope analytics:read);
	// each is routed when set.
	Dashboard      http.Handler
	DashboardStats http.Handler
}

// Server is the Vitals HTTP API. It is an http.Handler; Serve runs it on a
// listener.
type Server struct {
	d       Deps
	specs   map[string]routeSpec // by ServeMux pattern
	handler http.Handler         // admission → mux
	o       options
	mux     *http.ServeMux
	now     func() time.Time
	metrics *metrics
}

// New returns a Server routing to d.
func New(d Deps, opts ...Option) *Server {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Checks == nil {
		d.Checks = &ops.Checks{}
	}
	if d.NewSigningKey == nil {
		d.NewSigningKey = webhook.NewEd25519Key
	}
	if d.Registry == nil {
		d.Registry = ops.NewRegistry()
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if d.Signatures == nil && d.Admin != nil {
		var vopts []httpsig.VerifierOption
		if d.NonceCache != nil {
			vopts = append(vopts, httpsig.WithNonceCache(d.NonceCache))
		}
		d.Signatures = httpsig.NewVerifier(requestKeys{clients: d.Admin.Clients, users: d.Admin.Users, sealer: d.Sealer}, vopts...)
	}
	s := &Server{d: d, o: o, mux: http.NewServeMux(), now: time.Now, metrics: newMetrics(d.Registry)}
	s.routes()
	return s
}

func (s *Server) routes() {
	ops.Register(s.mux, s.d.Registry, s.d.Checks)
	s.specs = map[string]routeSpec{}
	for _, rs := range s.routeTable() {
		s.specs[rs.pattern] = rs
		s.mux.Handle(rs.pattern, s.guard(rs))
	}
	s.handler = http.HandlerFunc(s.serveMux)
	if s.d.Admission != nil {
		s.handler = s.d.Admission.Middleware(s.classify, s.handler)
	}
}

// classify gives a request its admission priority from the route table;
// operations endpoints and unknown routes bypass the queue.
func (s *Server) classify(r *http.Request) (admission.Priority, bool) {
	if opsPath(r.URL.Path) {
		return 0, true
	}
	_, pattern := s.mux.Handler(r)
	rs, ok := s.specs[pattern]
	if !ok {
		return 0, true
	}
	return rs.priority, false
}

// ServeHTTP serves r through the admission controller, the route's
// guards and handler, answering unknown routes and methods with
// problem+json; it records metrics, a log line and one audit record per
// call. A mutating call's response is held until its audit record is
// acknowledged by Kafka: if it cannot be, the client gets 503 instead.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ctx := clientip.NewContext(r.Context(), s.o.clientIP.Addr(r))
	n := &callNote{}
	_, pattern := s.mux.Handler(r)
	if rs, ok := s.specs[pattern]; ok {
		n.class = rs.class
	}
	r = r.WithContext(context.WithValue(ctx, noteKey{}, n))
	requestID := requestIDOf(r)
	w.Header().Set("X-Request-Id", requestID)
	audited := s.d.Audit != nil && !opsPath(r.URL.Path)
	var body *audit.BodyHasher
	if audited && r.Body != nil && r.Body != http.NoBody {
		body = audit.HashBody(r.Body)
		r.Body = body
	}
	sync := audited && mutating(r.Method)
	var out http.ResponseWriter = w
	var held *bufferedResponse
	if sync {
		held = newBufferedResponse()
		out = held
	}
	rw := &statusWriter{ResponseWriter: out, status: http.StatusOK}
	defer func() {
		if v := recover(); v != nil {
			s.d.Logger.Error("panic serving request", "path", r.URL.Path, "panic", v)
			if !rw.wrote {
				problem.Write(rw, r, problem.New(http.StatusInternalServerError, "internal", "the server failed to handle the request; it was logged, retry later"))
			}
		}
		route := pattern
		if route == "" {
			route = "unmatched"
		}
		if !n.reached && n.reason == "" && rw.status == http.StatusServiceUnavailable {
			n.reason = audit.ReasonOverloaded // shed before routing
		}
		if audited {
			rec := auditRecord(r, n, requestID, routePath(route), rw.status, time.Since(start), body)
			if _, err := s.d.Audit.Write(r.Context(), rec, sync); err != nil && sync {
				s.d.Logger.Error("audit record not acknowledged: the call's response is withheld", "route", route, "err", err)
				w.Header().Set("Retry-After", "5")
				problem.Write(w, r, problem.New(http.StatusServiceUnavailable, "audit-unavailable",
					"the call ran but its audit record could not be stored; its outcome is unknown to you: check and retry"))
				held = nil
			}
		}
		if held != nil {
			held.flush(w)
		}
		s.metrics.observe(route, string(n.class), rw.status, time.Since(start))
		if route != "GET /metrics" && route != "GET /healthz" && route != "GET /readyz" {
			s.d.Logger.Debug("request", "method", r.Method, "route", route, "status", rw.status, "duration", time.Since(start))
		}
	}()
	s.handler.ServeHTTP(rw, r)
}

// serveMux routes to the guarded handlers.
func (s *Server) serveMux(w http.ResponseWriter, r *http.Request) {
	noteFrom(r.Context()).reached = true
	_, pattern := s.mux.Handler(r)
	if pattern == "" {
		s.notRouted(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// requestIDOf returns the client's X-Request-Id when it is a sane token,
// else a fresh one.
func requestIDOf(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 64 && strings.Trim(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == "" {
		return id
	}
	return uuid.NewString()
}

// notRouted turns the mux's plain-text 404/405 into problem+json.
func (s *Server) notRouted(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	h, _ := s.mux.Handler(r)
	h.ServeHTTP(rec, r)
	if rec.Code == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", rec.Header().Get("Allow"))
		problem.Write(w, r, problem.New(http.StatusMethodNotAllowed, "method-not-allowed",
			fmt.Sprintf("%s is not supported on %s; allowed: %s", r.Method, r.URL.Path, rec.Header().Get("Allow"))))
		return
	}
	problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", fmt.Sprintf("no route %s %s; see the API reference in README.md", r.Method, r.URL.Path)))
}

// Serve serves s on ln until ctx is done, then shuts down gracefully
// (in-flight requests get up to 10 s). With tlsCfg nil it serves plain
// HTTP, which callers must only allow behind an explicit insecure flag.
func (s *Server) Serve(ctx context.Context, ln net.Listener, tlsCfg *tls.Config) error {
	hs := &http.Server{
		Handler:           s,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.d.Logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() {
		if tlsCfg != nil {
			errc <- hs.ServeTLS(ln, "", "")
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("api serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := hs.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// metrics are the API's Prometheus collectors.
type metrics struct {
	requests *prometheus.CounterVec   // by route, rate-limit class, status code
	latency  *prometheus.HistogramVec // by route
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vitals_api_requests_total",
			Help: "API requests by route, rate-limit class (none for unlimited routes) and status code.",
		}, []string{"route", "class", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vitals_api_request_duration_seconds", Help: "API request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

// observe counts one request of route in rate-limit class (empty for
// routes without a limit) answered with code after d.
func (m *metrics) observe(route, class string, code int, d time.Duration) {
	if class == "" {
		class = "none"
	}
	m.requests.WithLabelValues(route, class, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}
