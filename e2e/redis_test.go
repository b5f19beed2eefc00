package e2e

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vitalshq/vitals/internal/testenv"
)

var listeningRE = regexp.MustCompile(`msg="API listening" addr=(127\.0\.0\.1:\d+)`)

// TestRateLimitSharedAcrossInstances runs two `vitals api` processes on one
// Kafka cluster (kfake over TCP) and one redis-server (--redis-addr), and
// hammers a realtime route of one client through both with 64 workers: the
// shared bucket admits exactly its 5 calls across the two instances (each
// alone would admit 5), every other call gets 429 with RateLimit headers.
func TestRateLimitSharedAcrossInstances(t *testing.T) {
	brokers := strings.Join(testenv.Kfake(t), ",")
	redisAddr := testenv.Redis(t)
	dir := t.TempDir()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	t.Setenv("VITALS_MASTER_KEY", base64.StdEncoding.EncodeToString(key))

	api := func() *proc {
		// One issuer for both, as behind a load balancer.
		return start(t, "api", "--kafka-brokers", brokers, "--redis-addr", redisAddr, "--data-dir", dir,
			"--listen", "127.0.0.1:0", "--public-url", "https://127.0.0.1", "--partitions", "1")
	}
	url := func(p *proc) string {
		var u string
		eventually(t, 90*time.Second, "API listening", func() bool {
			select {
			case <-p.done:
				t.Fatalf("vitals api exited early:\n%s", p.Output())
			default:
			}
			if m := listeningRE.FindStringSubmatch(p.Output()); m != nil {
				u = "https://" + m[1]
				return true
			}
			return false
		})
		return u
	}
	first := api()
	url1 := url(first)
	second := api() // after the first: it reuses the TLS certificate and finds the bootstrap client
	url2 := url(second)

	pem, err := os.ReadFile(filepath.Join(dir, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	pl := &pipeline{dataDir: dir, apiURL: url1, http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}, MaxIdleConnsPerHost: 64}}}
	var creds struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	readJSONFile(t, filepath.Join(dir, "bootstrap-client.json"), &creds)
	pl.creds.ClientID, pl.creds.ClientSecret, pl.creds.TokenURL = creds.ClientID, creds.ClientSecret, url1+"/oauth/token"
	token := pl.token(t, "customers:read")

	var admitted, refused, other atomic.Int64
	var badHeaders atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Go(func() {
			base := url1
			if w%2 == 1 {
				base = url2
			}
			for next.Add(1) <= 300 {
				req, _ := http.NewRequest(http.MethodGet, base+"/v1/customers/cust_none/health", nil)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := pl.http.Do(req)
				if err != nil {
					other.Add(1)
					continue
				}
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusTooManyRequests:
					refused.Add(1)
					if resp.Header.Get("Retry-After") == "" || !strings.Contains(resp.Header.Get("RateLimit"), `"realtime"`) {
						badHeaders.Add(1)
					}
				case http.StatusNotFound: // admitted: the customer is unknown
					admitted.Add(1)
				default:
					other.Add(1)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("admitted %d, refused %d, other %d", admitted.Load(), refused.Load(), other.Load())
	if admitted.Load() != 5 || refused.Load() != 295 || other.Load() != 0 {
		t.Fatalf("admitted %d refused %d other %d: want exactly the shared burst of 5 admitted", admitted.Load(), refused.Load(), other.Load())
	}
	if n := badHeaders.Load(); n > 0 {
		t.Errorf("%d refusals without Retry-After or RateLimit headers", n)
	}
}

// readJSONFile decodes the JSON file at path into v.
func readJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
