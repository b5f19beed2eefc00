package httpsig

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Derived component names this package supports (RFC 9421 §2.2).
const (
	// ComponentMethod is the request method.
	ComponentMethod = "@method"
	// ComponentTargetURI is the full target URI, scheme://authority/path?query.
	ComponentTargetURI = "@target-uri"
	// ComponentAuthority is the normalized (lower-case, no default port) host.
	ComponentAuthority = "@authority"
	// ComponentScheme is the lower-case scheme.
	ComponentScheme = "@scheme"
	// ComponentRequestTarget is the request target as on the request line.
	ComponentRequestTarget = "@request-target"
	// ComponentPath is the absolute path, percent-encoded as sent.
	ComponentPath = "@path"
	// ComponentQuery is the query with its leading "?" ("?" when absent).
	ComponentQuery = "@query"
	// ComponentContentDigest is the Content-Digest field (RFC 9530).
	ComponentContentDigest = "content-digest"
	// ComponentContentType is the Content-Type field.
	ComponentContentType = "content-type"
)

// message is the view of one request that component values are taken
// from. The same code serves the signer (a client request, whose URL is
// absolute and RequestURI empty) and the verifier (a server request, whose
// RequestURI is the request target as received), so both build the same
// signature base for the same bytes on the wire.
type message struct {
	r      *http.Request
	scheme string // lower case
}

// newMessage views r; scheme overrides the detected scheme when not empty
// (a verifier behind a TLS-terminating proxy knows it was https).
func newMessage(r *http.Request, scheme string) message {
	if scheme == "" {
		switch {
		case r.URL != nil && r.URL.Scheme != "":
			scheme = r.URL.Scheme
		case r.TLS != nil:
			scheme = "https"
		default:
			scheme = "http"
		}
	}
	return message{r: r, scheme: strings.ToLower(scheme)}
}

// host is the authority as sent: the Host field on a server, r.Host or the
// URL's host on a client (what net/http sends as Host).
func (m message) host() string {
	if m.r.Host != "" {
		return m.r.Host
	}
	if m.r.URL != nil {
		return m.r.URL.Host
	}
	return ""
}

// target is the request target: as received on a server, as net/http's
// transport will write it on a client.
func (m message) target() string {
	if m.r.RequestURI != "" {
		return m.r.RequestURI
	}
	if m.r.URL == nil {
		return "/"
	}
	return m.r.URL.RequestURI()
}

// originForm returns the target in origin form (path?query), also when a
// server received it in absolute form.
func (m message) originForm() string {
	t := m.target()
	if strings.HasPrefix(t, "/") {
		return t
	}
	if u, err := url.ParseRequestURI(t); err == nil && u.IsAbs() {
		return u.RequestURI()
	}
	return t
}

// value returns the canonical value of the covered component name, or an
// *Error: ErrMissingComponent when the request lacks it, ErrMalformed when
// the name is not one this package supports.
func (m message) value(name string) (string, error) {
	if strings.HasPrefix(name, "@") {
		return m.derived(name)
	}
	if err := checkFieldName(name); err != nil {
		return "", err
	}
	var vals []string
	switch name {
	case "host":
		// net/http keeps Host out of Header on both sides.
		if h := m.host(); h != "" {
			vals = []string{h}
		}
	case "content-length":
		vals = m.r.Header.Values("Content-Length")
		if len(vals) == 0 && m.r.RequestURI == "" && m.r.ContentLength > 0 {
			// A client request: the transport writes it from ContentLength.
			vals = []string{strconv.FormatInt(m.r.ContentLength, 10)}
		}
	default:
		vals = m.r.Header.Values(name)
	}
	if len(vals) == 0 {
		return "", &Error{Kind: ErrMissingComponent, Component: name,
			Detail: "the signature covers " + name + " but the request has no " + name + " header"}
	}
	for i, v := range vals {
		if strings.ContainsAny(v, "\r\n") {
			return "", failf(ErrMalformed, "the %s header contains a line break", name)
		}
		vals[i] = strings.Trim(v, " \t")
	}
	return strings.Join(vals, ", "), nil
}

// derived returns the value of a derived component (RFC 9421 §2.2).
func (m message) derived(name string) (string, error) {
	switch name {
	case ComponentMethod:
		if m.r.Method == "" {
			return http.MethodGet, nil // net/http's meaning of an empty client method
		}
		return m.r.Method, nil
	case ComponentTargetURI:
		t := m.target()
		if !strings.HasPrefix(t, "/") {
			if u, err := url.ParseRequestURI(t); err == nil && u.IsAbs() {
				return t, nil // absolute form is the target URI itself
			}
		}
		return m.scheme + "://" + m.host() + t, nil
	case ComponentAuthority:
		return normalizeAuthority(m.host(), m.scheme), nil
	case ComponentScheme:
		return m.scheme, nil
	case ComponentRequestTarget:
		return m.target(), nil
	case ComponentPath:
		path, _, _ := strings.Cut(m.originForm(), "?")
		if path == "" {
			path = "/"
		}
		return path, nil
	case ComponentQuery:
		_, query, _ := strings.Cut(m.originForm(), "?")
		return "?" + query, nil
	default:
		return "", checkComponentName(name)
	}
}

// normalizeAuthority lower-cases host and drops the scheme's default port
// (RFC 9421 §2.2.3, RFC 9110 §4.2.3).
func normalizeAuthority(host, scheme string) string {
	host = strings.ToLower(host)
	switch {
	case scheme == "https" && strings.HasSuffix(host, ":443"):
		return strings.TrimSuffix(host, ":443")
	case scheme == "http" && strings.HasSuffix(host, ":80"):
		return strings.TrimSuffix(host, ":80")
	}
	return host
}

// checkComponentName accepts the name of a supported derived component or
// of a field.
func checkComponentName(name string) error {
	if !strings.HasPrefix(name, "@") {
		return checkFieldName(name)
	}
	switch name {
	case ComponentMethod, ComponentTargetURI, ComponentAuthority, ComponentScheme,
		ComponentRequestTarget, ComponentPath, ComponentQuery:
		return nil
	case "@signature-params":
		return failf(ErrMalformed, "@signature-params cannot be a covered component")
	}
	return failf(ErrMalformed, "derived component %s is not supported (supported: @method @target-uri @authority @scheme @request-target @path @query)", name)
}

// checkFieldName accepts a lower-case field name (RFC 9421 §2.1 requires
// covered field names in lower case).
func checkFieldName(name string) error {
	if name == "" {
		return failf(ErrMalformed, "empty component name")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isTChar(c) || ('A' <= c && c <= 'Z') {
			return failf(ErrMalformed, "component name %q is not a lower-case field name", name)
		}
	}
	return nil
}

// signatureBase builds the signature base of RFC 9421 §2.5 for the covered
// components and the signature parameters, and returns it with the
// serialized signature parameters (the Signature-Input member value).
func signatureBase(m message, covered []string, params sfParams) (base, sigParams string, err error) {
	var b strings.Builder
	items := make([]sfItem, len(covered))
	for i, name := range covered {
		v, err := m.value(name)
		if err != nil {
			return "", "", err
		}
		items[i] = sfItem{value: name}
		id, err := serializeItem(items[i])
		if err != nil {
			return "", "", malformed(err, "component %q", name)
		}
		b.WriteString(id)
		b.WriteString(": ")
		b.WriteString(v)
		b.WriteByte('\n')
	}
	sigParams, err = serializeInnerList(sfInnerList{items: items, params: params})
	if err != nil {
		return "", "", malformed(err, "signature parameters")
	}
	b.WriteString(`"@signature-params": `)
	b.WriteString(sigParams)
	return b.String(), sigParams, nil
}
