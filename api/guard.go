package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/vitalshq/vitals/admission"
	"github.com/vitalshq/vitals/audit"
	"github.com/vitalshq/vitals/auth"
	"github.com/vitalshq/vitals/httpsig"
	"github.com/vitalshq/vitals/ratelimit"
)

// Limiter decides whether a client may make one more call of a class
// (package ratelimit's Limiter).
type Limiter interface {
	Allow(ctx context.Context, clientID string, class ratelimit.Class, route string) ratelimit.Decision
}

// Admission queues calls by priority and sheds the lowest first under
// overload (package admission's Controller).
type Admission interface {
	Middleware(classify func(*http.Request) (p admission.Priority, bypass bool), next http.Handler) http.Handler
}

// SignatureVerifier checks the HTTP message signature (RFC 9421) of a
// request and its body (package httpsig's Verifier).
type SignatureVerifier interface {
	Verify(ctx context.Context, r *http.Request, body []byte) (httpsig.Result, error)
}

// AuditLog records one entry per call (package audit's Writer). With sync
// it returns once Kafka acknowledged the record.
type AuditLog interface {
	Write(ctx context.Context, rec audit.Record, sync bool) (audit.Record, error)
}

// maxSignedBody bounds the body read to check a signature (the batch
// ingest limit).
const maxSignedBody = 10 << 20

// callNote is what the guards learn about a call, for its audit record.
type callNote struct {
	clientID, userID string
	scopes           []string
	reason           string // why denied; "" when the handler ran
	class            ratelimit.Class
	reached          bool // admission let the call through to routing
}

type noteKey struct{}

func noteFrom(ctx context.Context) *callNote {
	if n, ok := ctx.Value(noteKey{}).(*callNote); ok {
		return n
	}
	return &callNote{} // outside ServeHTTP (tests of handlers): discarded
}

// guard wraps a route's handler in its checks, in order: the token (scope,
// MFA or person) and IP allow-list, the client's rate limit, the request
// signature; each refusal is answered (problem+json) and noted for the
// audit log.
func (s *Server) guard(rs routeSpec) http.Handler {
	if rs.access == public {
		if s.d.Limiter == nil || rs.class == "" {
			return rs.handler
		}
		// Unauthenticated routes (token requests, the sign-in page) are
		// limited per source address: password and secret guessing costs
		// the guesser, not the other clients.
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d := s.d.Limiter.Allow(r.Context(), publicLimitKey(r, rs.pattern), rs.class, rs.pattern)
			d.SetHeaders(w.Header())
			if !d.Allowed {
				noteFrom(r.Context()).reason = audit.ReasonRateLimited
				ratelimit.WriteTooMany(w, r, d)
				return
			}
			rs.handler.ServeHTTP(w, r)
		})
	}
	a := s.d.Auth
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		n := noteFrom(ctx)
		var (
			p   auth.Principal
			err error
		)
		switch rs.access {
		case scoped:
			p, err = a.Authorize(r, rs.scope)
		case admin:
			if p, err = a.Authorize(r, rs.scope); err == nil {
				err = a.CheckMFA(p, auth.DefaultMFAMaxAge)
			}
		case person:
			if p, err = a.Authenticate(r); err == nil {
				err = a.CheckUser(p)
			}
		}
		n.clientID = p.ClientID
		if p.IsUser() {
			n.userID = p.Subject
		}
		if rs.scope != "" && p.HasScope(rs.scope) {
			n.scopes = []string{rs.scope}
		}
		if err != nil {
			n.reason = auth.DenyReason(err)
			a.Deny(w, r, rs.scope, p, err)
			return
		}
		if s.d.Limiter != nil {
			d := s.d.Limiter.Allow(ctx, p.ClientID, rs.class, rs.pattern)
			d.SetHeaders(w.Header())
			if !d.Allowed {
				n.reason = audit.ReasonRateLimited
				ratelimit.WriteTooMany(w, r, d)
				return
			}
		}
		if rs.signed && s.d.Signatures != nil {
			body, ok := readBody(w, r, maxSignedBody)
			if !ok {
				n.reason = audit.ReasonBadSignature
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			res, err := s.d.Signatures.Verify(ctx, r, body)
			if err == nil && res.ClientID != signer(p) {
				err = fmt.Errorf("%w: key %s belongs to %s, the token to %s", httpsig.ErrUnknownKey, res.KeyID, res.ClientID, signer(p))
			}
			if err != nil {
				n.reason = audit.ReasonBadSignature
				httpsig.WriteProblem(w, r, err)
				return
			}
		}
		rs.handler.ServeHTTP(w, r.WithContext(auth.ContextWithPrincipal(ctx, p)))
	})
}

// publicLimitKey is whom an unauthenticated call is counted against: its
// source address, and for token requests also the client it names, so
// clients behind one NAT do not share a bucket while guessing one client's
// secret stays bounded.
func publicLimitKey(r *http.Request, pattern string) string {
	key := "ip:" + auth.ClientAddr(r).String()
	if pattern != "POST /oauth/token" {
		return key
	}
	id, _, ok := r.BasicAuth()
	if !ok {
		id = r.PostFormValue("client_id") // parsed once; the token handler reuses it
	} else if u, err := url.QueryUnescape(id); err == nil {
		id = u
	}
	if id != "" && len(id) <= 128 {
		key += "|client:" + id
	}
	return key
}

// routePath is the path part of a ServeMux pattern.
func routePath(pattern string) string {
	for i := 0; i < len(pattern); i++ {
		if pattern[i] == ' ' {
			return pattern[i+1:]
		}
	}
	return pattern
}

// bufferedResponse holds a mutating call's response until its audit
// record is acknowledged.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newBufferedResponse() *bufferedResponse {
	return &bufferedResponse{header: http.Header{}}
}

func (b *bufferedResponse) Header() http.Header { return b.header }
func (b *bufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}
func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

// flush sends the held response.
func (b *bufferedResponse) flush(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	if b.status == 0 {
		b.status = http.StatusOK
	}
	w.WriteHeader(b.status)
	_, _ = w.Write(b.body.Bytes())
}

// auditRecord builds a call's record.
func auditRecord(r *http.Request, n *callNote, requestID, route string, status int, latency time.Duration, body *audit.BodyHasher) audit.Record {
	rec := audit.Record{
		RequestID: requestID, ClientID: n.clientID, UserID: n.userID, SourceIP: auth.ClientAddr(r).String(),
		UserAgent: r.UserAgent(), Method: r.Method, Route: route, Status: status, LatencyMs: latency.Milliseconds(),
		Scopes: n.scopes, Decision: audit.DecisionAllowed, RateLimitClass: string(n.class),
	}
	if n.reason != "" {
		rec.Decision, rec.Reason = audit.DecisionDenied, n.reason
	}
	if body != nil {
		rec.BodySHA256 = body.Sum()
	}
	return rec
}
