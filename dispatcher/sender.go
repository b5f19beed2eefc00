package dispatcher

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/vitalshq/vitals/ssrf"
)

// Request is one HTTP delivery attempt: a signed POST of Body to URL.
type Request struct {
	EndpointID string
	URL        string
	Header     http.Header // content-type, user-agent and the webhook-* headers
	Body       []byte
}

// Response is what the endpoint answered. StatusCode is 0 when no response
// arrived.
type Response struct {
	StatusCode int
	Header     http.Header
	// Body is the start of the response body, at most MaxBodyExcerpt
	// bytes, kept for the attempt log.
	Body []byte
}

// Sender delivers one attempt. It returns a nil error only for a 2xx
// response; any other outcome is an error (wrapping ErrHTTPStatus or
// ErrRedirect for a non-2xx answer, which is also in the Response).
type Sender interface {
	Send(ctx context.Context, req *Request) (Response, error)
}

// Named failure classes of an attempt; test with errors.Is.
var (
	// ErrHTTPStatus means the endpoint answered with a status other than
	// 2xx or 3xx.
	ErrHTTPStatus = errors.New("dispatcher: endpoint answered non-2xx")
	// ErrRedirect means the endpoint answered 3xx. Redirects are never
	// followed: the registered URL is the only one checked and trusted.
	ErrRedirect = errors.New("dispatcher: endpoint answered a redirect")
	// ErrCircuitOpen means the attempt was not sent because the
	// endpoint's circuit breaker is open.
	ErrCircuitOpen = errors.New("dispatcher: circuit open")
)

// Defaults of the HTTP sender.
const (
	DefaultDeliveryTimeout = 15 * time.Second
	DefaultConnectTimeout  = 5 * time.Second
	// MaxBodyExcerpt is how much of a response body is kept.
	MaxBodyExcerpt = 4 << 10
	// maxDrain bounds how much of a response body is read to keep the
	// connection reusable.
	maxDrain = 64 << 10
)

// HTTPSender is the Sender that POSTs over HTTP(S). Its client follows no
// redirects, uses no proxy, and dials through an ssrf.Guard, so the address
// is checked after DNS resolution on every connection.
type HTTPSender struct {
	client *http.Client
	urls   sync.Map // raw URL → *url.URL: endpoints are few, deliveries many
	bufs   sync.Pool
}

// HTTPOption configures an HTTPSender.
type HTTPOption func(*httpConfig)

type httpConfig struct {
	timeout, connect time.Duration
	guard            *ssrf.Guard
	tls              *tls.Config
}

// Timeout bounds a whole attempt, response headers and body included
// (default DefaultDeliveryTimeout).
func Timeout(d time.Duration) HTTPOption {
	return func(c *httpConfig) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// ConnectTimeout bounds the TCP connect and the TLS handshake, each
// (default DefaultConnectTimeout).
func ConnectTimeout(d time.Duration) HTTPOption {
	return func(c *httpConfig) {
		if d > 0 {
			c.connect = d
		}
	}
}

// Guard sets the address guard (default ssrf.New(), which refuses private
// addresses). Its dial timeout is replaced by ConnectTimeout.
func Guard(g *ssrf.Guard) HTTPOption { return func(c *httpConfig) { c.guard = g } }

// TLSConfig sets the client TLS configuration (default: system roots,
// TLS 1.2 minimum).
func TLSConfig(t *tls.Config) HTTPOption { return func(c *httpConfig) { c.tls = t } }

// NewHTTPSender returns an HTTPSender with a keep-alive connection pool.
func NewHTTPSender(opts ...HTTPOption) *HTTPSender {
	c := httpConfig{timeout: DefaultDeliveryTimeout, connect: DefaultConnectTimeout}
	for _, o := range opts {
		o(&c)
	}
	if c.guard == nil {
		c.guard = ssrf.New()
	}
	if c.tls == nil {
		c.tls = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	dialer := c.guard.Dialer()
	dialer.Timeout = c.connect
	transport := &http.Transport{
		// With an egress proxy the guard checks each target before handing
		// it to the proxy (see ssrf.EgressProxy); without one it returns nil.
		Proxy:                 c.guard.Proxy,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       c.tls,
		TLSHandshakeTimeout:   c.connect,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: c.timeout,
	}
	return &HTTPSender{client: &http.Client{
		Transport: transport,
		Timeout:   c.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// parseURL returns rawURL parsed, from the cache. The parsed URL is shared:
// net/http never modifies a request's URL.
func (s *HTTPSender) parseURL(rawURL string) (*url.URL, error) {
	if u, ok := s.urls.Load(rawURL); ok {
		return u.(*url.URL), nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	s.urls.Store(rawURL, u)
	return u, nil
}

// Send POSTs one attempt. Success is a 2xx status. req.Header becomes the
// request's header: the caller must not use it afterwards.
func (s *HTTPSender) Send(ctx context.Context, req *Request) (Response, error) {
	u, err := s.parseURL(req.URL)
	if err != nil {
		return Response{}, fmt.Errorf("send to %s: %w", req.EndpointID, err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "", bytes.NewReader(req.Body))
	if err != nil {
		return Response{}, fmt.Errorf("send to %s: %w", req.EndpointID, err)
	}
	hr.URL, hr.Host, hr.Header = u, u.Host, req.Header
	resp, err := s.client.Do(hr)
	if err != nil {
		return Response{}, fmt.Errorf("send to %s: %w", req.EndpointID, err)
	}
	var excerpt []byte
	if resp.ContentLength != 0 {
		// Most endpoints answer with an empty body; read others through a
		// pooled buffer and keep only what arrived.
		buf, _ := s.bufs.Get().(*[MaxBodyExcerpt]byte)
		if buf == nil {
			buf = new([MaxBodyExcerpt]byte)
		}
		n, _ := io.ReadFull(resp.Body, buf[:])
		excerpt = bytes.Clone(buf[:n])
		s.bufs.Put(buf)
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	}
	_ = resp.Body.Close()
	out := Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: excerpt}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return out, nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return out, fmt.Errorf("send to %s: %w: %d", req.EndpointID, ErrRedirect, resp.StatusCode)
	default:
		return out, fmt.Errorf("send to %s: %w: %d", req.EndpointID, ErrHTTPStatus, resp.StatusCode)
	}
}

// Error classes recorded in analytics.WebhookAttempt.ErrorClass.
const (
	ClassTimeout     = "timeout"
	ClassConnect     = "connect"
	ClassTLS         = "tls"
	ClassHTTP4xx     = "http_4xx"
	ClassHTTP5xx     = "http_5xx"
	ClassRedirect    = "redirect"
	ClassCircuitOpen = "circuit_open"
	ClassSSRFRefused = "ssrf_refused"
	ClassCanceled    = "canceled"   // the dispatcher was stopping
	ClassBadSecret   = "bad_secret" // the endpoint's secret does not parse
	ClassOther       = "other"
)

// Classify maps an attempt's status and error to an error class; "" for a
// success.
func Classify(status int, err error) string {
	if err == nil {
		return ""
	}
	var (
		opErr   *net.OpError
		netErr  net.Error
		certErr *tls.CertificateVerificationError
		recErr  tls.RecordHeaderError
		alert   tls.AlertError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
	)
	switch {
	case errors.Is(err, ssrf.ErrForbiddenAddress):
		return ClassSSRFRefused
	case errors.Is(err, ErrCircuitOpen), errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return ClassCircuitOpen
	case errors.Is(err, ErrRedirect), status >= 300 && status < 400:
		return ClassRedirect
	case status >= 400 && status < 500:
		return ClassHTTP4xx
	case status >= 500 && status < 600:
		return ClassHTTP5xx
	case errors.Is(err, context.Canceled):
		return ClassCanceled
	case errors.As(err, &certErr), errors.As(err, &recErr), errors.As(err, &alert),
		errors.As(err, &unknown), errors.As(err, &host), errors.As(err, &invalid):
		return ClassTLS
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return ClassConnect
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return ClassTimeout
	case errors.As(err, &opErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ClassConnect
	}
	return ClassOther
}

// retryAfter reads a Retry-After header (delay-seconds or an HTTP date) as
// a wait from now; ok is false when there is none or it does not parse.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := h.Get("Retry-After")
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(min(secs, 1<<32)) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(0, at.Sub(now)), true
}
