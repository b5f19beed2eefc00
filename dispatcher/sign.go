package dispatcher

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/vitalshq/vitals/endpoint"
	"github.com/vitalshq/vitals/webhook"
)

// ErrBadSigningKey means an endpoint's ed25519 signing key does not parse.
var ErrBadSigningKey = errors.New("dispatcher: bad ed25519 signing key")

// The Standard Webhooks header names (webhook.HeaderID, …) in their
// canonical form, so that setting them does not canonicalize (and
// allocate) on every attempt.
const (
	canonicalHeaderID        = "Webhook-Id"
	canonicalHeaderTimestamp = "Webhook-Timestamp"
	canonicalHeaderSignature = "Webhook-Signature"
)

// Header values shared by every attempt; net/http never modifies them.
var (
	contentTypeJSON = []string{"application/json"}
	userAgent       = []string{UserAgent}
)

// keyFunc returns the parsed HMAC key of a whsec_ secret.
type keyFunc func(secret string) ([]byte, error)

// requestHeader builds the headers of one attempt: the endpoint's custom
// headers, then content type, user agent and the Standard Webhooks headers
// signed with every secret of ep.Secrets(now), plus a "v1a," ed25519
// signature when the endpoint has a signing key. keyOf parses secrets (the
// endpoint state caches them); a secret that does not parse fails the
// whole header, with webhook.Headers' error.
func requestHeader(ep endpoint.Endpoint, msgID string, now time.Time, body []byte, keyOf keyFunc) (http.Header, error) {
	h := make(http.Header, 5+len(ep.Headers))
	for k, v := range ep.Headers {
		if !endpoint.ReservedHeader(k) { // the API refuses them; this is the second line
			h.Set(k, v)
		}
	}
	h["Content-Type"] = contentTypeJSON
	h["User-Agent"] = userAgent
	secrets := ep.Secrets(now)
	unix := now.Unix()
	sigs := make([]string, 0, len(secrets)+1)
	for _, s := range secrets {
		key, err := keyOf(s)
		if err != nil || msgID == "" {
			// The signer's own checks and error.
			if err := webhook.Headers(h, msgID, now, body, secrets...); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("webhook headers %s: %w", msgID, webhook.ErrBadSecret)
		}
		sigs = append(sigs, webhook.SignKey(key, msgID, unix, body))
	}
	if len(secrets) == 0 {
		if err := webhook.Headers(h, msgID, now, body); err != nil {
			return nil, err
		}
	}
	if ep.SigningKeyEd25519 != "" {
		sig, err := webhook.SignEd25519(ep.SigningKeyEd25519, msgID, now, body)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadSigningKey, err)
		}
		sigs = append(sigs, sig)
	}
	h[canonicalHeaderID] = []string{msgID}
	h[canonicalHeaderTimestamp] = []string{strconv.FormatInt(unix, 10)}
	h[canonicalHeaderSignature] = []string{strings.Join(sigs, " ")}
	return h, nil
}
