package keyring

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Wrapper encrypts data keys under a master key it never reveals: the seam
// for a KMS. keyID is bound to the wrapped key as authenticated data (a KMS's
// encryption context), so a wrapped key cannot be passed off under another
// id. Implementations must be safe for concurrent use.
type Wrapper interface {
	// Wrap encrypts the data key dek, whose id is keyID.
	Wrap(ctx context.Context, keyID string, dek []byte) ([]byte, error)
	// Unwrap decrypts a data key that Wrap returned for keyID.
	Unwrap(ctx context.Context, keyID string, wrapped []byte) ([]byte, error)
	// ID names the master key, so that a data key records which master
	// wrapped it. It must not reveal the master key.
	ID() string
}

// localWrapper is a Wrapper holding the master key in process memory.
type localWrapper struct {
	aead cipher.AEAD
	id   string
}

// NewLocalWrapper returns a Wrapper that wraps data keys with AES-256-GCM
// under master, 32 bytes (see LoadMaster). Its ID is "local:" and 12 hex
// digits of a hash of the master key, enough to tell two masters apart.
func NewLocalWrapper(master []byte) (Wrapper, error) {
	if len(master) != MasterKeySize {
		return nil, fmt.Errorf("%w (got %d bytes)", ErrBadMaster, len(master))
	}
	aead, err := newAEAD(master)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(append([]byte("vitals/keyring/master-id/v1\x00"), master...))
	return &localWrapper{aead: aead, id: "local:" + hex.EncodeToString(sum[:6])}, nil
}

// Wrap implements Wrapper.
func (w *localWrapper) Wrap(_ context.Context, keyID string, dek []byte) ([]byte, error) {
	return w.aead.Seal(nil, nil, dek, wrapAAD(keyID)), nil
}

// Unwrap implements Wrapper.
func (w *localWrapper) Unwrap(_ context.Context, keyID string, wrapped []byte) ([]byte, error) {
	if len(wrapped) < w.aead.Overhead() {
		return nil, fmt.Errorf("%w: wrapped data key %s is %d bytes", ErrMalformed, keyID, len(wrapped))
	}
	dek, err := w.aead.Open(nil, nil, wrapped, wrapAAD(keyID))
	if err != nil {
		return nil, fmt.Errorf("%w: data key %s does not unwrap under master %s", ErrDecrypt, keyID, w.id)
	}
	return dek, nil
}

// ID implements Wrapper.
func (w *localWrapper) ID() string { return w.id }

func wrapAAD(keyID string) []byte { return []byte("vitals/keyring/dek/v1:" + keyID) }

// newAEAD returns AES-256-GCM with random 96-bit nonces prepended to the
// ciphertext.
func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	return aead, nil
}
