package audit

import (
	"fmt"
	"strings"
)

// Finding is a secret Scan found in an audit record. It names the secret
// by its index in Scan's arguments, never by its value, so a failing test
// does not print it.
type Finding struct {
	Instance string
	Seq      uint64
	ID       string
	Field    string // canonical field name, e.g. user_agent; scopes[i] for a scope
	Secret   int    // index of the secret in Scan's arguments
}

// String formats f without the secret.
func (f Finding) String() string {
	return fmt.Sprintf("secret #%d in field %s of record %s (chain %s seq %d)", f.Secret, f.Field, f.ID, f.Instance, f.Seq)
}

// Scan reports every field of every record that contains one of secrets
// (tokens, client secrets, passwords, TOTP seeds…) verbatim. It covers all
// fields of the canonical encoding, so every column of api_audit. Empty
// secrets are ignored. Tests use it to prove the audit log holds none.
func Scan(recs []Record, secrets ...string) []Finding {
	var out []Finding
	for _, r := range recs {
		var fields []field
		for _, f := range r.fields() {
			if f.name != "scopes" && f.name != "version" {
				fields = append(fields, f)
			}
		}
		for i, s := range r.Scopes {
			fields = append(fields, field{fmt.Sprintf("scopes[%d]", i), s})
		}
		for _, f := range fields {
			for i, secret := range secrets {
				if secret != "" && strings.Contains(f.value, secret) {
					out = append(out, Finding{Instance: r.Instance, Seq: r.Seq, ID: r.ID, Field: f.name, Secret: i})
				}
			}
		}
	}
	return out
}
