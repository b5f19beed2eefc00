package dispatcher

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/vitalshq/vitals/endpoint"
	"github.com/vitalshq/vitals/webhook"
)

// ErrBadSigningKey means an endpoint's ed25519 signing key does not parse.
var ErrBadSigningKey = errors.New("dispatcher: bad ed25519 signing key")

// requestHeader builds the headers of one attempt: the endpoint's custom
// headers, then content type, user agent and the Standard Webhooks headers
// signed with every secret of ep.Secrets(now), plus a "v1a," ed25519
// signature when the endpoint has a signing key.
func requestHeader(ep endpoint.Endpoint, msgID string, now time.Time, body []byte) (http.Header, error) {
	h := make(http.Header, 5+len(ep.Headers))
	for k, v := range ep.Headers {
		if !endpoint.ReservedHeader(k) { // the API refuses them; this is the second line
			h.Set(k, v)
		}
	}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", UserAgent)
	if err := webhook.Headers(h, msgID, now, body, ep.Secrets(now)...); err != nil {
		return nil, err
	}
	if ep.SigningKeyEd25519 != "" {
		sig, err := webhook.SignEd25519(ep.SigningKeyEd25519, msgID, now, body)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadSigningKey, err)
		}
		h.Set("webhook-signature", h.Get("webhook-signature")+" "+sig)
	}
	return h, nil
}
