package keyring

import (
	"cmp"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

var (
	// ErrNoKey reports a Seal before any data key exists; see EnsureKey.
	ErrNoKey = errors.New("keyring: no data key")
	// ErrUnknownKey reports an envelope naming a data key that the store
	// does not hold.
	ErrUnknownKey = errors.New("keyring: unknown data key")
	// ErrMalformed reports a value that is not an envelope of this package.
	ErrMalformed = errors.New("keyring: malformed envelope")
	// ErrDecrypt reports an envelope that does not authenticate: tampered
	// with, truncated, or opened with other authenticated data than it was
	// sealed with.
	ErrDecrypt = errors.New("keyring: decryption failed")
)

const (
	// textPrefix starts every text envelope: format version 1.
	textPrefix = "vk1."
	// binaryVersion is the first byte of every binary envelope.
	binaryVersion byte = 1
	// maxKeyIDLen bounds a key id (it is length-prefixed by one byte in
	// the binary form).
	maxKeyIDLen = 64
	// unwrapTimeout bounds unwrapping a data key met for the first time
	// (Seal and Open take no context; a KMS call could hang).
	unwrapTimeout = 30 * time.Second
)

// Keyring seals and opens values with data keys from a Store, unwrapped by a
// Wrapper. It seals with the primary key, the newest in the store, so a key
// another instance added is used as soon as the store shows it. Unwrapped
// keys are kept in memory by id. A Keyring is safe for concurrent use.
type Keyring struct {
	wrapper Wrapper
	store   Store
	logger  *slog.Logger

	mu    sync.RWMutex
	aeads map[string]cipher.AEAD // unwrapped data keys by id
}

// Option configures a Keyring.
type Option func(*Keyring)

// WithLogger sets the logger (default: discard). It logs key creation and
// keys first met in the store, never key material.
func WithLogger(l *slog.Logger) Option { return func(k *Keyring) { k.logger = l } }

// New returns a Keyring over the data keys in store, wrapped by wrapper. It
// unwraps every key the store already holds, so a wrong master key fails
// here rather than on the first Open. With an empty store it seals nothing
// until EnsureKey or Rotate made a key.
func New(ctx context.Context, wrapper Wrapper, store Store, opts ...Option) (*Keyring, error) {
	k := &Keyring{wrapper: wrapper, store: store, aeads: map[string]cipher.AEAD{}}
	for _, o := range opts {
		o(k)
	}
	if k.logger == nil {
		k.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	for _, dk := range store.DataKeys() {
		if _, err := k.load(ctx, dk); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// Primary returns the id of the key Seal uses now, or "" when there is none.
func (k *Keyring) Primary() string {
	p, _ := k.primary()
	return p.ID
}

// EnsureKey creates the first data key when the store holds none. Instances
// starting together may each create one; the newest becomes primary and all
// of them open with any.
func (k *Keyring) EnsureKey(ctx context.Context) error {
	if _, ok := k.primary(); ok {
		return nil
	}
	_, err := k.Rotate(ctx)
	return err
}

// Rotate creates a data key, stores it wrapped and makes it the primary. Values
// sealed under older keys keep opening; Reseal moves them to the new key.
func (k *Keyring) Rotate(ctx context.Context) (DataKey, error) {
	id, err := newKeyID()
	if err != nil {
		return DataKey{}, err
	}
	dek := make([]byte, MasterKeySize)
	if _, err := rand.Read(dek); err != nil {
		return DataKey{}, fmt.Errorf("keyring: rotate: %w", err)
	}
	aead, err := newAEAD(dek)
	if err != nil {
		return DataKey{}, err
	}
	wrapped, err := k.wrapper.Wrap(ctx, id, dek)
	if err != nil {
		return DataKey{}, fmt.Errorf("keyring: rotate: wrap %s: %w", id, err)
	}
	created := time.Now().UTC()
	if p, ok := k.primary(); ok && !created.After(p.CreatedAt) {
		// The new key must be the newest even if this clock is behind the
		// one that made the current primary.
		created = p.CreatedAt.Add(time.Microsecond)
	}
	dk := DataKey{ID: id, Wrapped: wrapped, CreatedAt: created, MasterID: k.wrapper.ID()}
	// Cache first: once stored, a concurrent Seal may pick the key.
	k.mu.Lock()
	k.aeads[id] = aead
	k.mu.Unlock()
	if err := k.store.PutDataKey(ctx, dk); err != nil {
		return DataKey{}, fmt.Errorf("keyring: rotate: store %s: %w", id, err)
	}
	k.logger.Info("keyring: new primary data key", "key_id", id, "master_id", dk.MasterID)
	return dk, nil
}

// Seal encrypts plaintext with the primary key and returns the text
// envelope "vk1.<key id>.<base64url>". aad names what the value is (e.g.
// "endpoint-secret:ep_123"); Open needs the same aad.
func (k *Keyring) Seal(plaintext, aad []byte) (string, error) {
	id, aead, err := k.sealKey()
	if err != nil {
		return "", err
	}
	ct := aead.Seal(nil, nil, plaintext, aad)
	var b strings.Builder
	b.Grow(len(textPrefix) + len(id) + 1 + base64.RawURLEncoding.EncodedLen(len(ct)))
	b.WriteString(textPrefix)
	b.WriteString(id)
	b.WriteByte('.')
	b.WriteString(base64.RawURLEncoding.EncodeToString(ct))
	return b.String(), nil
}

// Open decrypts a text envelope made by Seal with the same aad, under
// whichever key it names. Errors wrap ErrMalformed, ErrUnknownKey or
// ErrDecrypt.
func (k *Keyring) Open(sealed string, aad []byte) ([]byte, error) {
	id, body, err := parseText(sealed)
	if err != nil {
		return nil, err
	}
	ct, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("%w: bad base64 after key id %s", ErrMalformed, id)
	}
	return k.open(id, ct, aad)
}

// Reseal returns sealed re-encrypted under the primary key, or sealed itself
// when the primary key already sealed it. `vitals keys rotate` runs it over
// every stored secret after Rotate.
func (k *Keyring) Reseal(sealed string, aad []byte) (string, error) {
	if id, ok := KeyID(sealed); ok && id == k.Primary() {
		return sealed, nil
	}
	plain, err := k.Open(sealed, aad)
	if err != nil {
		return "", err
	}
	return k.Seal(plain, aad)
}

// SealBytes is Seal in the binary form: 0x01, the key id's length in one
// byte, the key id, then nonce, ciphertext and tag. It saves the base64
// overhead where values are bytes anyway (the analytics spool).
func (k *Keyring) SealBytes(plaintext, aad []byte) ([]byte, error) {
	id, aead, err := k.sealKey()
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, 2+len(id)+len(plaintext)+aead.Overhead())
	out = append(out, binaryVersion, byte(len(id)))
	out = append(out, id...)
	return aead.Seal(out, nil, plaintext, aad), nil
}

// OpenBytes decrypts a binary envelope made by SealBytes with the same aad.
// Errors wrap ErrMalformed, ErrUnknownKey or ErrDecrypt.
func (k *Keyring) OpenBytes(sealed, aad []byte) ([]byte, error) {
	id, ct, err := parseBinary(sealed)
	if err != nil {
		return nil, err
	}
	return k.open(id, ct, aad)
}

// KeyID returns the id of the data key that sealed a text envelope, and
// whether sealed is one. It decrypts nothing.
func KeyID(sealed string) (string, bool) {
	id, _, err := parseText(sealed)
	return id, err == nil
}

// KeyIDBytes returns the id of the data key that sealed a binary envelope,
// and whether sealed is one. It decrypts nothing.
func KeyIDBytes(sealed []byte) (string, bool) {
	id, _, err := parseBinary(sealed)
	return id, err == nil
}

// IsSealed reports whether s looks like a text envelope, so that code
// reading values written before encryption was turned on can tell them
// apart.
func IsSealed(s string) bool {
	_, ok := KeyID(s)
	return ok
}

func (k *Keyring) open(id string, ct, aad []byte) ([]byte, error) {
	aead, err := k.aead(id)
	if err != nil {
		return nil, err
	}
	if len(ct) < aead.Overhead() {
		return nil, fmt.Errorf("%w: ciphertext under key %s is %d bytes", ErrMalformed, id, len(ct))
	}
	plain, err := aead.Open(nil, nil, ct, aad)
	if err != nil {
		return nil, fmt.Errorf("%w: under key %s", ErrDecrypt, id)
	}
	return plain, nil
}

// primary returns the newest data key in the store.
func (k *Keyring) primary() (DataKey, bool) {
	keys := k.store.DataKeys()
	if len(keys) == 0 {
		return DataKey{}, false
	}
	return slices.MaxFunc(keys, func(a, b DataKey) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	}), true
}

// sealKey returns the primary key's id and cipher.
func (k *Keyring) sealKey() (string, cipher.AEAD, error) {
	p, ok := k.primary()
	if !ok {
		return "", nil, ErrNoKey
	}
	aead, err := k.aead(p.ID)
	if err != nil {
		return "", nil, err
	}
	return p.ID, aead, nil
}

// aead returns the cipher of data key id, unwrapping the key from the store
// on first use: keys another instance added are found this way.
func (k *Keyring) aead(id string) (cipher.AEAD, error) {
	k.mu.RLock()
	aead, ok := k.aeads[id]
	k.mu.RUnlock()
	if ok {
		return aead, nil
	}
	keys := k.store.DataKeys()
	i := slices.IndexFunc(keys, func(dk DataKey) bool { return dk.ID == id })
	if i < 0 {
		return nil, fmt.Errorf("%w: %s", ErrUnknownKey, id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), unwrapTimeout)
	defer cancel()
	aead, err := k.load(ctx, keys[i])
	if err != nil {
		return nil, err
	}
	k.logger.Info("keyring: loaded data key added by another instance", "key_id", id)
	return aead, nil
}

// load unwraps dk and caches its cipher.
func (k *Keyring) load(ctx context.Context, dk DataKey) (cipher.AEAD, error) {
	if !validKeyID(dk.ID) {
		return nil, fmt.Errorf("%w: stored data key has invalid id %q", ErrMalformed, dk.ID)
	}
	dek, err := k.wrapper.Unwrap(ctx, dk.ID, dk.Wrapped)
	if err != nil {
		return nil, fmt.Errorf("keyring: unwrap data key %s (wrapped by %s, master here is %s): %w",
			dk.ID, dk.MasterID, k.wrapper.ID(), err)
	}
	if len(dek) != MasterKeySize {
		return nil, fmt.Errorf("%w: data key %s is %d bytes", ErrMalformed, dk.ID, len(dek))
	}
	aead, err := newAEAD(dek)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.aeads[dk.ID] = aead
	return aead, nil
}

// parseText splits a text envelope into key id and base64 body.
func parseText(s string) (id, body string, err error) {
	rest, ok := strings.CutPrefix(s, textPrefix)
	if !ok {
		return "", "", fmt.Errorf("%w: no %q prefix", ErrMalformed, textPrefix)
	}
	id, body, ok = strings.Cut(rest, ".")
	if !ok || !validKeyID(id) || body == "" {
		return "", "", fmt.Errorf("%w: bad key id or body", ErrMalformed)
	}
	return id, body, nil
}

// parseBinary splits a binary envelope into key id and ciphertext.
func parseBinary(b []byte) (id string, ct []byte, err error) {
	if len(b) < 2 || b[0] != binaryVersion {
		return "", nil, fmt.Errorf("%w: not a version %d binary envelope", ErrMalformed, binaryVersion)
	}
	n := int(b[1])
	if len(b) < 2+n {
		return "", nil, fmt.Errorf("%w: truncated key id", ErrMalformed)
	}
	id = string(b[2 : 2+n])
	if !validKeyID(id) {
		return "", nil, fmt.Errorf("%w: bad key id", ErrMalformed)
	}
	return id, b[2+n:], nil
}

// newKeyID returns a fresh random data key id, "dk_" and 16 hex digits.
func newKeyID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("keyring: key id: %w", err)
	}
	return "dk_" + hex.EncodeToString(b[:]), nil
}

// validKeyID reports whether id is 1 to maxKeyIDLen characters from
// [A-Za-z0-9_-], which the text envelope carries unescaped.
func validKeyID(id string) bool {
	if id == "" || len(id) > maxKeyIDLen {
		return false
	}
	for _, c := range []byte(id) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
