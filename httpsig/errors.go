package httpsig

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/vitalshq/vitals/problem"
)

// The failure classes of Verify. Every error Verify returns for a request
// that is at fault matches exactly one of them with errors.Is; any other
// error (a key store or nonce cache that cannot be reached) is the server's
// fault and matches none.
var (
	// ErrMissingSignature: the request carries no Signature-Input or no
	// Signature field (or not the label the verifier requires).
	ErrMissingSignature = errors.New("missing signature")
	// ErrMalformed: a signature field, a covered component identifier or a
	// signature parameter cannot be parsed or is not supported.
	ErrMalformed = errors.New("malformed signature")
	// ErrUnknownKey: the keyid is not registered.
	ErrUnknownKey = errors.New("unknown key")
	// ErrMissingComponent: the signature does not cover a component the
	// verifier requires, or covers one the request does not have.
	ErrMissingComponent = errors.New("missing component")
	// ErrStale: created is outside the allowed clock skew, or expires has
	// passed.
	ErrStale = errors.New("stale signature")
	// ErrDigestMismatch: the body does not match Content-Digest.
	ErrDigestMismatch = errors.New("content digest mismatch")
	// ErrBadSignature: the signature does not verify with the key.
	ErrBadSignature = errors.New("bad signature")
	// ErrReplayed: the nonce was already used with this key.
	ErrReplayed = errors.New("replayed nonce")
)

// Error is a verification failure: its Kind is one of the Err* classes
// above and Detail says what exactly failed, in words fit for a client.
type Error struct {
	// Kind is the failure class (ErrStale, ErrReplayed, ...).
	Kind error
	// Component names the component at fault for ErrMissingComponent.
	Component string
	// NotCovered is true when Component is required but not covered by the
	// signature, false when it is covered but absent from the request.
	NotCovered bool
	// Required lists the components the verifier requires for this request,
	// so the answer can tell the client what to sign.
	Required []string
	// Detail is a sentence about the failure; it never contains key
	// material.
	Detail string
	// Err is an underlying cause, if any (a parse error).
	Err error
}

// Error returns "<kind>: <detail>[: <cause>]", e.g. "stale signature:
// created is 412 s in the past; ...".
func (e *Error) Error() string {
	var b strings.Builder
	if e.Kind != nil {
		b.WriteString(e.Kind.Error())
	}
	for _, part := range []string{e.Detail, errText(e.Err)} {
		if part == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(part)
	}
	return b.String()
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Unwrap exposes Kind and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	errs := []error{e.Kind}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// failf builds an *Error of the given kind.
func failf(kind error, format string, args ...any) *Error {
	return &Error{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// malformed builds an ErrMalformed with a cause.
func malformed(cause error, format string, args ...any) *Error {
	return &Error{Kind: ErrMalformed, Detail: fmt.Sprintf(format, args...), Err: cause}
}

// Reason returns a short, stable code for err, for audit records and
// metrics: signature_missing, signature_malformed, signature_unknown_key,
// signature_missing_component, signature_stale, digest_mismatch,
// signature_invalid, signature_replayed, or signature_unavailable for an
// error that is not the client's fault. It returns "" for nil.
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrMissingSignature):
		return "signature_missing"
	case errors.Is(err, ErrMalformed):
		return "signature_malformed"
	case errors.Is(err, ErrUnknownKey):
		return "signature_unknown_key"
	case errors.Is(err, ErrMissingComponent):
		return "signature_missing_component"
	case errors.Is(err, ErrStale):
		return "signature_stale"
	case errors.Is(err, ErrDigestMismatch):
		return "digest_mismatch"
	case errors.Is(err, ErrBadSignature):
		return "signature_invalid"
	case errors.Is(err, ErrReplayed):
		return "signature_replayed"
	default:
		return "signature_unavailable"
	}
}

// acceptSignature returns the Accept-Signature field (RFC 9421 §5.1) that
// asks for a signature over required with created, nonce and keyid, or ""
// when required is empty.
func acceptSignature(required []string) string {
	if len(required) == 0 {
		return ""
	}
	items := make([]sfItem, len(required))
	for i, c := range required {
		items[i] = sfItem{value: c}
	}
	params := sfParams{{key: "created", value: true}, {key: "nonce", value: true}, {key: "keyid", value: true}}
	s, err := serializeDictionary(sfDict{{key: DefaultLabel, list: &sfInnerList{items: items, params: params}}})
	if err != nil {
		return ""
	}
	return s
}

// WriteProblem answers a request whose signature Verify refused. A client
// fault is a 401 problem+json whose detail names the part that failed and
// how to fix it; its extension members are signature_error (Reason) and,
// for a missing component, component. It also carries Accept-Signature
// (RFC 9421 §5.1) naming the components to sign. Any other error (the nonce cache or
// key store is down) is a 503 with Retry-After, since the request may be
// fine: the signature is never accepted unchecked.
func WriteProblem(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) || e.Kind == nil {
		w.Header().Set("Retry-After", "1")
		problem.Write(w, r, problem.New(http.StatusServiceUnavailable, "signature-check-unavailable",
			"the request signature could not be checked right now; retry shortly").
			With("signature_error", Reason(err)))
		return
	}
	signList := "@method @target-uri content-digest content-type"
	if len(e.Required) > 0 {
		signList = strings.Join(e.Required, " ")
	}
	var slug, detail string
	switch {
	case errors.Is(e, ErrMissingSignature):
		slug = "signature-required"
		detail = e.Detail + "; this operation requires an HTTP message signature (RFC 9421): send Signature-Input and Signature covering " +
			signList + ", with created, nonce and keyid parameters"
	case errors.Is(e, ErrMalformed):
		slug = "signature-malformed"
		detail = e.Error() + "; see RFC 9421 §4 for the Signature-Input and Signature syntax"
	case errors.Is(e, ErrUnknownKey):
		slug = "signature-key-unknown"
		detail = e.Detail + "; sign with a key registered for your client, or register one through the admin API"
	case errors.Is(e, ErrMissingComponent):
		slug = "signature-component-missing"
		if e.NotCovered {
			detail = e.Detail + "; sign " + signList
		} else {
			detail = e.Detail + "; send it, or stop covering it in Signature-Input"
		}
	case errors.Is(e, ErrStale):
		slug = "signature-stale"
		detail = e.Detail + "; sign each request right before sending it and keep the client clock synchronized (NTP)"
	case errors.Is(e, ErrDigestMismatch):
		slug = "content-digest-mismatch"
		detail = e.Detail + "; compute Content-Digest as sha-256 over the exact body bytes sent (RFC 9530) and sign again"
	case errors.Is(e, ErrBadSignature):
		slug = "signature-invalid"
		detail = e.Detail + "; build the signature base from the request exactly as sent (RFC 9421 §2.5) and sign with the registered key"
	case errors.Is(e, ErrReplayed):
		slug = "signature-replayed"
		detail = e.Detail + "; use a fresh random nonce for every request, also when retrying"
	default:
		slug = "signature-invalid"
		detail = e.Error()
	}
	if accept := acceptSignature(e.Required); accept != "" {
		w.Header().Set("Accept-Signature", accept)
	}
	p := problem.New(http.StatusUnauthorized, slug, detail).With("signature_error", Reason(e))
	if e.Component != "" {
		p.With("component", e.Component)
	}
	problem.Write(w, r, p)
}
