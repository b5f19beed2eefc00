package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vitalshq/vitals/keyring"
)

// Sealer encrypts secrets at rest: package keyring's Keyring in
// production. aad is bound to the ciphertext, so a sealed value opens only
// with the aad it was sealed with: in the record it was written to.
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

// signingKeyAAD binds a sealed private key to its key id:
// "auth-signing-key:<kid>".
func signingKeyAAD(kid string) []byte { return []byte("auth-signing-key:" + kid) }

// errNoSealer is the error of a sealed signing key read by a store that has
// no Sealer.
var errNoSealer = errors.New("sealed at rest, but this store has no keyring (auth.WithKeySealer)")

// keyRecord is a SigningKey as stored in topics.SigningKeys. With a Sealer
// the PKCS #8 key is in SealedPrivateKey; records written without one (and
// before encryption at rest) have it in PrivateKey, the SigningKey JSON.
type keyRecord struct {
	KID              string    `json:"kid"`
	Algorithm        string    `json:"alg"`
	PrivateKey       []byte    `json:"private_key,omitempty"`
	SealedPrivateKey string    `json:"sealed_private_key,omitempty"`
	CreatedAt        time.Time `json:"created_at"`
}

// keyEntry is one signing key record as the store holds it: the record as
// stored and the key with its private key opened, or why it does not open.
// A key that does not open is never handed out.
type keyEntry struct {
	stored keyRecord

	mu  sync.Mutex
	key SigningKey // valid when err is nil
	err error
}

// open opens en.stored into en.key, or sets en.err.
func (en *keyEntry) open(s Sealer) {
	r := en.stored
	k := SigningKey{KID: r.KID, Algorithm: r.Algorithm, PrivateKey: r.PrivateKey, CreatedAt: r.CreatedAt}
	switch {
	case r.SealedPrivateKey == "":
	case len(r.PrivateKey) > 0:
		en.key, en.err = SigningKey{}, fmt.Errorf("signing key %s: both a sealed and a clear private key", r.KID)
		return
	case s == nil:
		en.key, en.err = SigningKey{}, fmt.Errorf("signing key %s: %w", r.KID, errNoSealer)
		return
	default:
		der, err := s.Open(r.SealedPrivateKey, signingKeyAAD(r.KID))
		if err != nil {
			en.key, en.err = SigningKey{}, fmt.Errorf("signing key %s: open private key: %w", r.KID, err)
			return
		}
		k.PrivateKey = der
	}
	en.key, en.err = k, nil
}

// signingKey returns the opened key, or why it is unusable. A key sealed
// under a data key this instance did not know when the record arrived is
// opened again here: the data key arrives through another topic.
func (en *keyEntry) signingKey(c keyCodec) (SigningKey, error) {
	en.mu.Lock()
	defer en.mu.Unlock()
	if en.err != nil && errors.Is(en.err, keyring.ErrUnknownKey) {
		en.open(c.sealer)
		if en.err == nil {
			c.logger.Info("auth store: signing key opens now that its data key is known", "kid", en.stored.KID)
		}
	}
	return en.key, en.err
}

// keyCodec is the ktable.Codec of topics.SigningKeys: JSON with the
// private key sealed by sealer (in the clear when sealer is nil).
type keyCodec struct {
	sealer Sealer
	logger *slog.Logger
}

// Marshal seals the private key and encodes the record.
func (c keyCodec) Marshal(en *keyEntry) ([]byte, error) {
	k := en.key
	r := keyRecord{KID: k.KID, Algorithm: k.Algorithm, CreatedAt: k.CreatedAt}
	switch {
	case c.sealer == nil || len(k.PrivateKey) == 0:
		r.PrivateKey = k.PrivateKey
	default:
		sealed, err := c.sealer.Seal(k.PrivateKey, signingKeyAAD(k.KID))
		if err != nil {
			return nil, fmt.Errorf("signing key %s: seal: %w", k.KID, err)
		}
		r.SealedPrivateKey = sealed
	}
	return json.Marshal(r)
}

// Unmarshal decodes a record and opens its private key. A key that does
// not open is still returned, marked unusable, and logged as an error: had
// Unmarshal failed, the table would skip the record and keep serving the
// key's previous version.
func (c keyCodec) Unmarshal(b []byte) (*keyEntry, error) {
	en := &keyEntry{}
	if err := json.Unmarshal(b, &en.stored); err != nil {
		return nil, err
	}
	en.open(c.sealer)
	switch {
	case en.err != nil:
		c.logger.Error("auth store: signing key does not open; it neither signs nor verifies", "kid", en.stored.KID, "err", en.err)
	case c.sealer != nil && len(en.stored.PrivateKey) > 0:
		c.logger.Warn("auth store: signing key stored in the clear (written before encryption at rest); `vitals keys rotate` seals it",
			"kid", en.stored.KID)
	}
	return en, nil
}
