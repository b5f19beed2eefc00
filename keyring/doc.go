// Package keyring encrypts secrets at rest: endpoint signing secrets, TOTP
// seeds, JWT private keys, secret fields of compacted topics and the
// analytics spool. It is envelope encryption with key ids and rotation.
//
// A master key (the key-encryption key, KEK) wraps data keys (DEKs). Only
// wrapped data keys are stored, in the compacted topic topics.Keyring (or a
// MemoryStore), so every instance that holds the master key can open what any
// other instance sealed. The master key never leaves the [Wrapper]: the
// [LocalWrapper] holds it in memory (from VITALS_MASTER_KEY or a key file,
// see [LoadMaster]); a KMS-backed Wrapper fits the same seam.
//
// A [Keyring] seals with its primary data key, the newest one, and opens with
// whichever key a value names. [Keyring.Rotate] adds a new primary; values
// sealed under older keys keep opening, and [Keyring.Reseal] moves one to
// the primary (what `vitals keys rotate` does to every stored record).
//
// # Envelope format
//
// The text form, for JSON fields and record values, is
//
//	vk1.<key id>.<base64url, unpadded, of nonce || ciphertext || tag>
//
// and the binary form, for the spool, is
//
//	0x01 | len(key id) (1 byte) | key id | nonce || ciphertext || tag
//
// Both are AES-256-GCM with a 12-byte random nonce and a 16-byte tag. Key ids
// are 1 to 64 characters from [A-Za-z0-9_-], so the text form needs no
// escaping. The caller's additional authenticated data (AAD) names what the
// value is, e.g. "endpoint-secret:ep_123": it is not stored, and opening with
// a different AAD fails, so a ciphertext cannot be moved to another record.
// Data keys are wrapped the same way under the master key, with the data key
// id as AAD.
//
// # Why the standard library and not Tink
//
// crypto/aes and crypto/cipher give exactly the one primitive needed, with a
// small surface and no new dependency. Since Go 1.24 they are part of Go's
// FIPS 140-3 validated module, and cipher.NewGCMWithRandomNonce is its
// approved way of choosing GCM nonces. The envelope is a format we define and
// document above rather than Tink's keyset and wire format. Random 96-bit
// nonces bound each data key to 2^32 seals; rotating keeps far below that.
//
// This package must never log or return key material or plaintext in an
// error, never seal with a key it cannot also open, and never choose a key
// from anything but the key id in the envelope.
package keyring
