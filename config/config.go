// Package config is the one place Vitals settings are defined. Every
// setting is a field of Config with one flag name; the same name, upper-cased
// with VITALS_ in front and '-' as '_', is its environment variable, and with
// '_' for '-' its key in the YAML file. Precedence: flag > environment >
// YAML file (--config / VITALS_CONFIG) > default.
//
// It must never start anything: subcommands read a Config and wire packages.
package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config holds every setting of every subcommand.
type Config struct {
	// Common.
	DataDir   string // --data-dir: state of `vitals run` (embedded broker, keys, spool, TLS)
	LogLevel  string // --log-level: debug, info, warn, error
	LogFormat string // --log-format: auto (text on a TTY, JSON otherwise), text, json
	// MasterKeyFile holds the master key (base64 of 32 bytes, file mode
	// 0600) that wraps the data keys encrypting secrets at rest. The key
	// itself may come from the environment instead: VITALS_MASTER_KEY (not
	// a flag, so it never shows in a process listing). `vitals run` without
	// either generates <data-dir>/master.key.
	MasterKeyFile string // --master-key-file

	// Kafka.
	KafkaBrokers        []string // --kafka-brokers: external cluster; empty = embedded broker (run only)
	EmbeddedKafkaListen string   // --embedded-kafka-listen: where the embedded broker listens
	Partitions          int      // --partitions: partitions of data topics created at start
	// KafkaTLS dials the external cluster over TLS (1.2 or later: managed
	// clusters may not offer 1.3), trusting the PEM CA certificates in
	// KafkaTLSCA (default: the system roots) and presenting the client
	// certificate KafkaTLSCert/KafkaTLSKey when given. The embedded broker
	// ignores these settings.
	KafkaTLS           bool   // --kafka-tls
	KafkaTLSCA         string // --kafka-tls-ca
	KafkaTLSCert       string // --kafka-tls-cert
	KafkaTLSKey        string // --kafka-tls-key
	KafkaTLSServerName string // --kafka-tls-server-name: name the broker certificates carry (default: each broker's host)
	// KafkaSASLMechanism authenticates to the cluster: SCRAM-SHA-256,
	// SCRAM-SHA-512, or PLAIN (refused without KafkaTLS, as it sends the
	// password itself); empty: no SASL. The password is best given as
	// VITALS_KAFKA_SASL_PASSWORD, which no process listing shows.
	KafkaSASLMechanism string // --kafka-sasl-mechanism
	KafkaSASLUser      string // --kafka-sasl-user
	KafkaSASLPassword  string // --kafka-sasl-password

	// API.
	Listen       string // --listen: API address
	PublicURL    string // --public-url: base URL clients use (default derived from --listen)
	InsecureHTTP bool   // --insecure-http: plain HTTP, local development only
	TLSCert      string // --tls-cert: PEM certificate (default: self-signed in the data dir)
	TLSKey       string // --tls-key: PEM private key
	// TrustedProxies are the CIDRs of reverse proxies whose
	// X-Forwarded-For is believed for the client address (IP allow-lists,
	// audit); empty: the socket peer is the client.
	TrustedProxies []string // --trusted-proxies
	// TokenKeyRotation is how often the access-token signing key is
	// replaced; retired keys stay published until their tokens expire.
	TokenKeyRotation time.Duration // --token-key-rotation (0: never)
	// ExternalIssuer and ExternalJWKSURL make the API also accept access
	// tokens of another authorization server (Keycloak, Hydra, …), checked
	// against the keys it publishes.
	ExternalIssuer  string // --external-issuer: its iss claim
	ExternalJWKSURL string // --external-jwks-url: https URL of its JWK Set
	// RedisAddr shares rate-limit counts (and signature nonces) between
	// API instances; empty keeps them in each instance's memory.
	// RateLimits replace the default limit of a class for every client:
	// "class=quota/window[/burst]", e.g. "standard=5000/1h/250".
	RateLimits    []string // --rate-limit (comma-separated)
	RedisAddr     string   // --redis-addr: HOST:PORT
	RedisPassword string   // --redis-password (prefer VITALS_REDIS_PASSWORD)

	// Processor.
	ModelConfig     string // --model-config: YAML file tuning the health model (default: built-in)
	TransactionalID string // --transactional-id: this processor instance's Kafka transactional id

	// Processor, dispatcher and other stages' operations listener.
	OpsListen string // --ops-listen: /healthz, /readyz, /metrics of processor and dispatcher

	// Dispatcher.
	AllowPrivateEndpoints  bool            // --allow-private-endpoints: allow loopback/private webhook URLs
	AllowInsecureEndpoints bool            // --allow-insecure-endpoints: allow http:// webhook URLs
	EgressProxy            string          // --egress-proxy: HTTP(S) proxy URL for webhook deliveries
	RetrySchedule          []time.Duration // --retry-schedule: waits after the first attempt
	DeliveryTimeout        time.Duration   // --delivery-timeout: per attempt
	BreakerOpen            time.Duration   // --breaker-open: how long an endpoint's open circuit stays open

	// Analytics.
	ClickHouseAddr     string // --clickhouse-addr: native protocol HOST:PORT; empty = disk spool
	ClickHouseDatabase string // --clickhouse-database
	ClickHouseUser     string // --clickhouse-user
	ClickHousePassword string // --clickhouse-password
	// SpoolLimit bounds the analytics disk spool in bytes; a full spool
	// pushes back on the dispatcher instead of dropping rows.
	SpoolLimit int64 // --spool-limit
	// ClickHouseTLS connects over TLS (1.2 or later) to ClickHouse's
	// secure native port (9440 by default), trusting the PEM CA
	// certificates in ClickHouseTLSCA (default: the system roots).
	ClickHouseTLS           bool   // --clickhouse-tls
	ClickHouseTLSCA         string // --clickhouse-tls-ca
	ClickHouseTLSServerName string // --clickhouse-tls-server-name: name the server certificate carries (default: the host of --clickhouse-addr)
}

// Default returns the defaults of every setting.
func Default() Config {
	return Config{
		DataDir:             "./data",
		LogLevel:            "info",
		LogFormat:           "auto",
		EmbeddedKafkaListen: "127.0.0.1:9092",
		Partitions:          6,
		Listen:              "127.0.0.1:8443",
		OpsListen:           "127.0.0.1:9464",
		RetrySchedule: []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute,
			2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour},
		DeliveryTimeout:    15 * time.Second,
		TokenKeyRotation:   30 * 24 * time.Hour,
		SpoolLimit:         1 << 30,
		BreakerOpen:        30 * time.Second,
		ClickHouseDatabase: "vitals",
		ClickHouseUser:     "default",
	}
}

// Group selects which settings a subcommand takes.
type Group int

// Setting groups.
const (
	Common Group = iota
	Kafka
	API
	Ops
	Embedded
	Processor
	Dispatch
	Analytics
)

// Register defines the flags of the given groups on fs, bound to c.
func (c *Config) Register(fs *flag.FlagSet, groups ...Group) {
	has := func(g Group) bool { return slices.Contains(groups, g) }
	if has(Common) {
		fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for local state: embedded broker, keys, TLS, spool")
		fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn, error")
		fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: auto (text on a terminal, JSON otherwise), text, json")
		fs.StringVar(&c.MasterKeyFile, "master-key-file", c.MasterKeyFile, "file holding the master key (base64 of 32 bytes, mode 0600) that encrypts secrets at rest; or set VITALS_MASTER_KEY")
	}
	if has(Kafka) {
		fs.Var((*listValue)(&c.KafkaBrokers), "kafka-brokers", "comma-separated seed brokers of an external Kafka cluster")
		fs.IntVar(&c.Partitions, "partitions", c.Partitions, "partitions of the data topics created at start")
		fs.BoolVar(&c.KafkaTLS, "kafka-tls", c.KafkaTLS, "connect to the Kafka cluster over TLS (1.2 or later)")
		fs.StringVar(&c.KafkaTLSCA, "kafka-tls-ca", c.KafkaTLSCA, "PEM file of the CA certificates that sign the brokers' certificates (default: system roots; needs --kafka-tls)")
		fs.StringVar(&c.KafkaTLSCert, "kafka-tls-cert", c.KafkaTLSCert, "PEM client certificate for brokers that authenticate clients by certificate (with --kafka-tls-key)")
		fs.StringVar(&c.KafkaTLSKey, "kafka-tls-key", c.KafkaTLSKey, "PEM private key of --kafka-tls-cert")
		fs.StringVar(&c.KafkaTLSServerName, "kafka-tls-server-name", c.KafkaTLSServerName, "name the brokers' certificates must carry (default: the host of each broker address)")
		fs.StringVar(&c.KafkaSASLMechanism, "kafka-sasl-mechanism", c.KafkaSASLMechanism, "SASL mechanism: SCRAM-SHA-256, SCRAM-SHA-512, or PLAIN (only with --kafka-tls) (default: no SASL)")
		fs.StringVar(&c.KafkaSASLUser, "kafka-sasl-user", c.KafkaSASLUser, "SASL user")
		fs.StringVar(&c.KafkaSASLPassword, "kafka-sasl-password", c.KafkaSASLPassword, "SASL password; prefer the environment variable VITALS_KAFKA_SASL_PASSWORD, which no process listing shows")
	}
	if has(API) {
		fs.StringVar(&c.Listen, "listen", c.Listen, "API listen address HOST:PORT")
		fs.StringVar(&c.PublicURL, "public-url", c.PublicURL, "base URL clients reach the API at (default from --listen)")
		fs.BoolVar(&c.InsecureHTTP, "insecure-http", c.InsecureHTTP, "INSECURE: serve plain HTTP instead of TLS 1.3 (local development only)")
		fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate file (default: self-signed, generated into the data dir)")
		fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM private key file for --tls-cert")
		fs.Var((*listValue)(&c.RateLimits), "rate-limit", "default limits per class, comma-separated class=quota/window[/burst] (e.g. standard=5000/1h/250); defaults: standard=1000/1h, realtime=100/1h, bulk=100/24h, admin=500/1h")
		fs.StringVar(&c.RedisAddr, "redis-addr", c.RedisAddr, "Redis HOST:PORT shared by API instances for exact rate-limit counts and signature nonces (default: per-instance memory)")
		fs.StringVar(&c.RedisPassword, "redis-password", c.RedisPassword, "Redis password; prefer the environment variable VITALS_REDIS_PASSWORD")
		fs.StringVar(&c.ExternalIssuer, "external-issuer", c.ExternalIssuer, "also accept access tokens issued by this OAuth server (its iss), e.g. a Keycloak realm URL")
		fs.StringVar(&c.ExternalJWKSURL, "external-jwks-url", c.ExternalJWKSURL, "https URL of --external-issuer's JWK Set")
		fs.DurationVar(&c.TokenKeyRotation, "token-key-rotation", c.TokenKeyRotation, "how often the access-token signing key is replaced (0: only on demand, POST /v1/admin/keys/rotate)")
		fs.Var((*listValue)(&c.TrustedProxies), "trusted-proxies", "comma-separated CIDRs of reverse proxies whose X-Forwarded-For names the client (default: none)")
	}
	if has(Ops) {
		fs.StringVar(&c.OpsListen, "ops-listen", c.OpsListen, "listen address of /healthz, /readyz and /metrics (empty: off)")
	}
	if has(Embedded) {
		fs.StringVar(&c.EmbeddedKafkaListen, "embedded-kafka-listen", c.EmbeddedKafkaListen, "listen address of the embedded Kafka broker (used without --kafka-brokers)")
	}
	if has(Processor) {
		fs.StringVar(&c.ModelConfig, "model-config", c.ModelConfig, "YAML file tuning the health model (see deploy/model.yaml; default: built-in)")
		fs.StringVar(&c.TransactionalID, "transactional-id", c.TransactionalID, "Kafka transactional id of this processor instance: unique per instance, stable across its restarts (default: vitals-processor-<hostname>)")
	}
	if has(Dispatch) {
		fs.BoolVar(&c.AllowPrivateEndpoints, "allow-private-endpoints", c.AllowPrivateEndpoints, "INSECURE: allow webhook URLs on loopback, private and link-local addresses (local development)")
		fs.BoolVar(&c.AllowInsecureEndpoints, "allow-insecure-endpoints", c.AllowInsecureEndpoints, "INSECURE: allow plain http:// webhook URLs (default: https only)")
		fs.StringVar(&c.EgressProxy, "egress-proxy", c.EgressProxy, "HTTP(S) proxy URL webhook deliveries go through (static outbound IPs)")
		fs.Var((*durationsValue)(&c.RetrySchedule), "retry-schedule", "comma-separated waits before each retry after the first attempt")
		fs.DurationVar(&c.DeliveryTimeout, "delivery-timeout", c.DeliveryTimeout, "timeout of one webhook attempt")
		fs.DurationVar(&c.BreakerOpen, "breaker-open", c.BreakerOpen, "how long a failing endpoint's circuit stays open before one probe request")
	}
	if has(Analytics) {
		fs.StringVar(&c.ClickHouseAddr, "clickhouse-addr", c.ClickHouseAddr, "ClickHouse native protocol HOST:PORT (empty: spool attempts to disk)")
		fs.StringVar(&c.ClickHouseDatabase, "clickhouse-database", c.ClickHouseDatabase, "ClickHouse database")
		fs.StringVar(&c.ClickHouseUser, "clickhouse-user", c.ClickHouseUser, "ClickHouse user")
		fs.StringVar(&c.ClickHousePassword, "clickhouse-password", c.ClickHousePassword, "ClickHouse password")
		fs.Int64Var(&c.SpoolLimit, "spool-limit", c.SpoolLimit, "bytes the analytics disk spool may hold while ClickHouse is away; when full, deliveries slow down instead of rows being dropped")
		fs.BoolVar(&c.ClickHouseTLS, "clickhouse-tls", c.ClickHouseTLS, "connect to ClickHouse over TLS (1.2 or later; its secure native port, 9440 by default)")
		fs.StringVar(&c.ClickHouseTLSCA, "clickhouse-tls-ca", c.ClickHouseTLSCA, "PEM file of the CA certificates that sign ClickHouse's certificate (default: system roots; needs --clickhouse-tls)")
		fs.StringVar(&c.ClickHouseTLSServerName, "clickhouse-tls-server-name", c.ClickHouseTLSServerName, "name ClickHouse's certificate must carry (default: the host of --clickhouse-addr)")
	}
}

// EnvPrefix prefixes every environment variable.
const EnvPrefix = "VITALS_"

// EnvName returns the environment variable of a flag name.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse applies, in increasing precedence, the YAML file named by --config or
// VITALS_CONFIG, the VITALS_* environment, and args to the flags of fs. It
// returns the remaining arguments. getenv is os.Getenv outside tests.
func Parse(fs *flag.FlagSet, args []string, getenv func(string) string) ([]string, error) {
	var file string
	fs.StringVar(&file, "config", getenv(EnvPrefix+"CONFIG"), "YAML config file (keys are flag names with '_' for '-')")
	// Find --config first: the file is applied before env and flags.
	for i, a := range args {
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name == "config" {
			if hasVal {
				file = val
			} else if i+1 < len(args) {
				file = args[i+1]
			}
		}
	}
	if file != "" {
		if err := applyYAML(fs, file); err != nil {
			return nil, err
		}
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "config" {
			return
		}
		if v := getenv(EnvName(f.Name)); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = errors.Join(envErr, fmt.Errorf("%s=%q: %w", EnvName(f.Name), v, err))
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return fs.Args(), nil
}

func applyYAML(fs *flag.FlagSet, file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("config file %s: %w", file, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name := strings.ReplaceAll(k, "_", "-")
		if fs.Lookup(name) == nil || name == "config" {
			return fmt.Errorf("config file %s: unknown key %q for this command", file, k)
		}
		var s string
		switch v := m[k].(type) {
		case []any:
			parts := make([]string, len(v))
			for i, x := range v {
				parts[i] = fmt.Sprint(x)
			}
			s = strings.Join(parts, ",")
		default:
			s = fmt.Sprint(v)
		}
		if err := fs.Set(name, s); err != nil {
			return fmt.Errorf("config file %s: key %q: %w", file, k, err)
		}
	}
	return nil
}

type listValue []string

func (l *listValue) String() string { return strings.Join(*l, ",") }
func (l *listValue) Set(s string) error {
	*l = nil
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

type durationsValue []time.Duration

func (d *durationsValue) String() string {
	parts := make([]string, len(*d))
	for i, x := range *d {
		parts[i] = x.String()
	}
	return strings.Join(parts, ",")
}

func (d *durationsValue) Set(s string) error {
	var out []time.Duration
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		x, err := time.ParseDuration(p)
		if err != nil {
			return err
		}
		if x <= 0 {
			return fmt.Errorf("duration %s must be positive", p)
		}
		out = append(out, x)
	}
	*d = out
	return nil
}
