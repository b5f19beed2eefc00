// Package user holds the people who sign in to Vitals through the OAuth
// authorization-code flow (administrators): their accounts, argon2id
// password hashes, TOTP second factor and one-time recovery codes.
//
// A login is Authenticate (username and password), then, for a user with
// HasMFA, VerifyTOTP or UseRecoveryCode; the authorization server records
// the methods used (amr "pwd", "otp") in the tokens it issues. Enrolment is
// BeginTOTP (an otpauth:// URI and its QR code), then ConfirmTOTP with a
// first code, which also returns ten recovery codes.
//
// Users live behind the Store interface: KafkaStore materializes the
// compacted topic topics.Users in every API instance; MemoryStore is for
// tests and single-process setups.
//
// This package must never store, log or return in an error a password, a
// TOTP seed in the clear or a recovery code: passwords are stored as
// argon2id hashes, recovery codes as SHA-256 hashes (they are 80-bit random
// values), and TOTP seeds only sealed by a Sealer with the user id bound as
// additional data. It does not rate-limit attempts: the login endpoint
// must (see Service.VerifyTOTP).
package user
