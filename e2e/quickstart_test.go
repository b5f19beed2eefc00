package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestQuickstart runs what `make run` runs — `vitals run` on its embedded
// broker, `vitals listen` registering itself, `vitals simulate` — and waits
// for verified webhooks to be printed. It then restarts `vitals run` on the
// same data dir: the embedded broker kept the endpoint and the clients.
func TestQuickstart(t *testing.T) {
	pl := startPipeline(t, "--embedded-kafka-listen", "127.0.0.1:0")
	creds := filepath.Join(pl.dataDir, "bootstrap-client.json")

	listen := start(t, "listen", "--credentials", creds, "--listen", "127.0.0.1:0")
	urlRE := regexp.MustCompile(`listening for webhooks"? url=(http://\S+)`)
	var hookURL string
	eventually(t, 30*time.Second, "vitals listen to register and listen", func() bool {
		m := urlRE.FindStringSubmatch(listen.Output())
		if m != nil {
			hookURL = m[1]
		}
		return m != nil
	})

	sim := start(t, "simulate", "--credentials", creds, "--customers", "3", "--rate", "0", "--batch", "500")
	eventually(t, 60*time.Second, "simulate to finish", func() bool {
		select {
		case <-sim.done:
			return true
		default:
			return false
		}
	})
	if code := sim.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(sim.Output(), "sent ") {
		t.Fatalf("simulate exit %d:\n%s", code, sim.Output())
	}
	for _, typ := range []string{"health_score_change", "expansion_ready", "churn_risk_detected"} {
		eventually(t, 90*time.Second, "vitals listen to print a verified "+typ, func() bool {
			return regexp.MustCompile(typ + `\s+\S+\s+signature verified`).MatchString(listen.Output())
		})
	}

	// listen refuses a delivery without a valid signature.
	req, _ := http.NewRequest(http.MethodPost, hookURL, strings.NewReader(`{"event":"forged"}`))
	req.Header.Set("webhook-id", "msg_forged")
	req.Header.Set("webhook-timestamp", "1700000000")
	req.Header.Set("webhook-signature", "v1,Zm9yZ2Vk")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("forged delivery: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	// Restart on the same data dir: state persisted by the embedded broker.
	before, _ := os.ReadFile(creds)
	_ = pl.proc.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-pl.proc.done:
	case <-time.After(30 * time.Second):
		t.Fatal("vitals run did not stop on SIGTERM")
	}
	pl2 := &pipeline{dataDir: pl.dataDir}
	pl2.proc = start(t, "run", "--data-dir", pl.dataDir, "--listen", strings.TrimPrefix(pl.apiURL, "https://"),
		"--allow-private-endpoints", "--allow-insecure-endpoints", "--embedded-kafka-listen", "127.0.0.1:0")
	pl2.creds, pl2.apiURL, pl2.http = pl.creds, pl.apiURL, pl.http
	eventually(t, 60*time.Second, "restarted API ready", func() bool {
		resp, err := pl2.http.Get(pl2.apiURL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	after, _ := os.ReadFile(creds)
	if string(before) != string(after) {
		t.Error("the bootstrap client was re-created on restart")
	}
	status, _, body := pl2.do(t, http.MethodGet, "/v1/endpoints", pl2.token(t, "endpoints:read"), "", nil)
	if status != http.StatusOK || !strings.Contains(string(body), hookURL) {
		t.Fatalf("endpoint lost across restart: %d %s", status, body)
	}

	// vitals listen deletes the endpoint it registered when it stops.
	_ = listen.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-listen.done:
	case <-time.After(20 * time.Second):
		t.Fatal("vitals listen did not stop on SIGTERM")
	}
	status, _, body = pl2.do(t, http.MethodGet, "/v1/endpoints", pl2.token(t, "endpoints:read"), "", nil)
	if status != http.StatusOK || strings.Contains(string(body), hookURL) {
		t.Fatalf("endpoint of the stopped listener still registered: %d %s", status, body)
	}
}
