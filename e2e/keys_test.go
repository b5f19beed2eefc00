package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/keyring"
	"github.com/vitalshq/vitals/topics"
)

// latestRecords returns the last value of every key of topic, decoded.
func latestRecords(t *testing.T, brokers []string, topic string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, r := range testenv.ReadAll(t, brokers, topic, false) {
		if r.Value == nil {
			delete(out, string(r.Key))
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatalf("%s record %s: %v", topic, r.Key, err)
		}
		out[string(r.Key)] = m
	}
	return out
}

// sealedFields returns the sealed fields of the endpoint and signing key
// records of the cluster, by "<key>.<field>", failing on any such field
// that is stored in the clear.
func sealedFields(t *testing.T, brokers []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for id, m := range latestRecords(t, brokers, topics.Endpoints) {
		for _, f := range []string{"secret", "previous_secret", "signing_key_ed25519"} {
			if v, _ := m[f].(string); v != "" {
				out[id+"."+f] = v
			}
		}
	}
	for kid, m := range latestRecords(t, brokers, topics.SigningKeys) {
		if _, ok := m["private_key"]; ok {
			t.Errorf("signing key %s is stored in the clear", kid)
		}
		out[kid+".sealed_private_key"], _ = m["sealed_private_key"].(string)
	}
	return out
}

// TestKeysRotate runs `vitals run` on its embedded broker, registers an
// endpoint, and runs `vitals keys rotate` against the running broker with
// the run's data dir: the topics hold no secret in the clear before, every
// sealed field names the new data key after, and the running pipeline
// still opens them — it signs a test delivery that verifies with the
// secret the API returned at registration.
func TestKeysRotate(t *testing.T) {
	pl := startPipeline(t, "--embedded-kafka-listen", "127.0.0.1:0")
	var brokers []string
	brokerRE := regexp.MustCompile(`embedded Kafka broker \(kfake\) listening"? brokers=(\S+)`)
	eventually(t, 10*time.Second, "the embedded broker's address in the log", func() bool {
		if m := brokerRE.FindStringSubmatch(pl.proc.Output()); m != nil {
			brokers = strings.Split(m[1], ",")
		}
		return brokers != nil
	})
	rcv := newReceiver(t)
	epID := pl.register(t, rcv, "*")

	before := sealedFields(t, brokers)
	if len(before) < 2 {
		t.Fatalf("sealed fields before rotation: %v", before)
	}
	for _, r := range testenv.ReadAll(t, brokers, topics.Endpoints, false) {
		if strings.Contains(string(r.Value), rcv.secret) || strings.Contains(string(r.Value), strings.TrimPrefix(rcv.secret, "whsec_")) {
			t.Fatalf("endpoint record holds the signing secret: %s", r.Value)
		}
	}
	oldKeys := map[string]bool{}
	for f, v := range before {
		id, ok := keyring.KeyID(v)
		if !ok {
			t.Fatalf("%s is not sealed: %.20q…", f, v)
		}
		oldKeys[id] = true
	}

	ctx, cancel := context.WithTimeout(ctx(t), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, vitalsBin, "keys", "rotate", "--data-dir", pl.dataDir,
		"--kafka-brokers", strings.Join(brokers, ","), "--log-format", "text")
	cmd.Env = os.Environ()
	var stdout strings.Builder
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("vitals keys rotate: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	t.Logf("vitals keys rotate:\n%s", out)
	m := regexp.MustCompile(`new primary data key: (dk_[0-9a-f]+)`).FindStringSubmatch(out)
	if m == nil || oldKeys[m[1]] {
		t.Fatalf("no new data key in the output:\n%s", out)
	}
	newKey := m[1]
	for _, row := range []string{
		`(?m)^` + regexp.QuoteMeta(topics.Endpoints) + `\s+1\s+1\s+0$`,
		`(?m)^` + regexp.QuoteMeta(topics.SigningKeys) + `\s+(\d+)\s+(\d+)\s+0$`,
		`(?m)^` + regexp.QuoteMeta(topics.Users) + `\s+\d+\s+\d+\s+0$`,
	} {
		if !regexp.MustCompile(row).MatchString(out) {
			t.Errorf("summary has no line matching %s:\n%s", row, out)
		}
	}

	after := sealedFields(t, brokers)
	if len(after) != len(before) {
		t.Fatalf("sealed fields: %d before, %d after", len(before), len(after))
	}
	for f, v := range after {
		if id, ok := keyring.KeyID(v); !ok || id != newKey {
			t.Errorf("%s after rotation: %.24q…, want an envelope under %s", f, v, newKey)
		}
	}

	// The running pipeline opens the re-sealed records: the API serves the
	// endpoint, and the dispatcher signs with the same secret.
	tok := pl.token(t, "endpoints:write endpoints:read")
	if status, _, b := pl.do(t, http.MethodGet, "/v1/endpoints/"+epID, tok, "", nil); status != http.StatusOK {
		t.Fatalf("GET endpoint after rotation: %d %s", status, b)
	}
	if status, _, b := pl.do(t, http.MethodPost, "/v1/endpoints/"+epID+"/test", tok, "", nil); status != http.StatusAccepted {
		t.Fatalf("test delivery: %d %s", status, b)
	}
	eventually(t, 30*time.Second, "a verified test delivery", func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return len(rcv.got) > 0
	})
	if n := rcv.badCount(); n != 0 {
		t.Fatalf("%d deliveries failed verification after rotation", n)
	}
}
