package endpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/vitalshq/vitals/keyring"
)

// Sealer encrypts secrets at rest: package keyring's Keyring in
// production. aad is bound to the ciphertext, so a sealed value opens only
// with the aad it was sealed with: in the record and field it was written
// to.
type Sealer interface {
	// Seal encrypts plaintext under the current data key into a text
	// envelope ("vk1.<key id>.…").
	Seal(plaintext, aad []byte) (string, error)
	// Open decrypts an envelope made by Seal with the same aad.
	Open(sealed string, aad []byte) ([]byte, error)
	// Reseal returns sealed re-encrypted under the current data key, or
	// sealed itself when that key sealed it.
	Reseal(sealed string, aad []byte) (string, error)
}

// secretField is one field of an endpoint sealed at rest.
type secretField struct {
	name string  // JSON name, also the last part of the aad
	val  *string // the field
}

// secretFields returns e's fields that are sealed at rest.
func secretFields(e *Endpoint) [3]secretField {
	return [3]secretField{
		{"secret", &e.Secret},
		{"previous_secret", &e.PreviousSecret},
		{"signing_key_ed25519", &e.SigningKeyEd25519},
	}
}

// secretAAD binds a sealed field to its endpoint and field:
// "endpoint-secret:<endpoint id>:<field>".
func secretAAD(endpointID, field string) []byte {
	return []byte("endpoint-secret:" + endpointID + ":" + field)
}

// errNoSealer is the error of a sealed record read by a registry that has
// no Sealer: its secrets are unusable, never taken for plaintext.
var errNoSealer = errors.New("sealed at rest, but this registry has no keyring (endpoint.WithSealer)")

// entry is one endpoint record as the registry holds it: the record as
// stored (secret fields sealed, or plaintext when written before
// encryption at rest) and the endpoint with its secrets opened, or why
// they do not open. A record whose secrets do not open is never handed
// out, so nothing is delivered with an empty or sealed secret.
type entry struct {
	stored Endpoint // as in the record

	mu  sync.Mutex
	ep  Endpoint // secrets in the clear; valid when err is nil
	err error
}

// open opens en.stored's sealed fields into en.ep, or sets en.err.
func (en *entry) open(s Sealer) {
	ep := en.stored
	for _, f := range secretFields(&ep) {
		p := f.val
		if *p == "" || !keyring.IsSealed(*p) {
			continue
		}
		if s == nil {
			en.ep, en.err = Endpoint{}, fmt.Errorf("endpoint %s: %s: %w", ep.ID, f.name, errNoSealer)
			return
		}
		plain, err := s.Open(*p, secretAAD(ep.ID, f.name))
		if err != nil {
			en.ep, en.err = Endpoint{}, fmt.Errorf("endpoint %s: open %s: %w", ep.ID, f.name, err)
			return
		}
		*p = string(plain)
	}
	en.ep, en.err = ep, nil
}

// unsealed reports whether a secret field of the record is stored in the
// clear (written before encryption at rest).
func (en *entry) unsealed() bool {
	for _, f := range secretFields(&en.stored) {
		if v := *f.val; v != "" && !keyring.IsSealed(v) {
			return true
		}
	}
	return false
}

// codec is the registry's ktable.Codec: JSON with the secret fields
// sealed by sealer (left in the clear when sealer is nil).
type codec struct {
	sealer Sealer
	logger *slog.Logger
}

// Marshal seals e's secret fields and encodes the record.
func (c codec) Marshal(en *entry) ([]byte, error) {
	out := en.ep
	for _, f := range secretFields(&out) {
		p := f.val
		if *p == "" {
			continue
		}
		if keyring.IsSealed(*p) {
			// It would be taken for an envelope when read back.
			return nil, fmt.Errorf("endpoint %s: %s has the form of a sealed value", out.ID, f.name)
		}
		if c.sealer == nil {
			continue
		}
		sealed, err := c.sealer.Seal([]byte(*p), secretAAD(out.ID, f.name))
		if err != nil {
			return nil, fmt.Errorf("endpoint %s: seal %s: %w", out.ID, f.name, err)
		}
		*p = sealed
	}
	return json.Marshal(out)
}

// Unmarshal decodes a record and opens its secrets. A record whose secrets
// do not open is still returned, marked unusable, and logged as an error:
// had Unmarshal failed, the table would skip the record and keep serving
// the endpoint's previous version, with its previous secrets.
func (c codec) Unmarshal(b []byte) (*entry, error) {
	en := &entry{}
	if err := json.Unmarshal(b, &en.stored); err != nil {
		return nil, err
	}
	en.open(c.sealer)
	switch {
	case en.err != nil && errors.Is(en.err, keyring.ErrUnknownKey):
		c.logger.Error("endpoint registry: secrets do not open yet, their data key is unknown here; the endpoint is unusable until its key is found",
			"endpoint_id", en.stored.ID, "err", en.err)
	case en.err != nil:
		c.logger.Error("endpoint registry: secrets do not open; the endpoint is unusable (no deliveries) until it is written again with a valid secret",
			"endpoint_id", en.stored.ID, "err", en.err)
	case c.sealer != nil && en.unsealed():
		c.logger.Warn("endpoint registry: secrets stored in the clear (written before encryption at rest); `vitals keys rotate` or the next change seals them",
			"endpoint_id", en.stored.ID)
	}
	return en, nil
}

// endpoint returns the opened endpoint, or why it is unusable. A record
// sealed under a data key this instance did not know when the record
// arrived (another instance rotated a moment ago) is opened again here, as
// the key arrives through a different topic.
func (en *entry) endpoint(c codec) (Endpoint, error) {
	en.mu.Lock()
	defer en.mu.Unlock()
	if en.err != nil && errors.Is(en.err, keyring.ErrUnknownKey) {
		en.open(c.sealer)
		if en.err == nil {
			c.logger.Info("endpoint registry: secrets open now that their data key is known", "endpoint_id", en.stored.ID)
		}
	}
	return en.ep, en.err
}
