package config

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "vitals.yaml")
	yml := "listen: 127.0.0.1:1111\ndata_dir: /from/yaml\nretry_schedule: [1s, 2s]\nkafka_brokers: [a:1, b:2]\ninsecure_http: true\n"
	if err := os.WriteFile(file, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"VITALS_DATA_DIR": "/from/env", "VITALS_DELIVERY_TIMEOUT": "3s"}
	c := Default()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.Register(fs, Common, Kafka, API, Dispatch)
	rest, err := Parse(fs, []string{"--config", file, "--delivery-timeout=7s", "extra"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:1111" || !c.InsecureHTTP {
		t.Errorf("yaml not applied: %+v", c)
	}
	if c.DataDir != "/from/env" {
		t.Errorf("env must beat yaml: %q", c.DataDir)
	}
	if c.DeliveryTimeout != 7*time.Second {
		t.Errorf("flag must beat env: %v", c.DeliveryTimeout)
	}
	if !slices.Equal(c.RetrySchedule, []time.Duration{time.Second, 2 * time.Second}) || !slices.Equal(c.KafkaBrokers, []string{"a:1", "b:2"}) {
		t.Errorf("lists: %v %v", c.RetrySchedule, c.KafkaBrokers)
	}
	if len(rest) != 1 || rest[0] != "extra" {
		t.Errorf("rest %v", rest)
	}
}

func TestErrorsNameTheSource(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bad.yaml")
	os.WriteFile(file, []byte("lissten: x\n"), 0o600)
	c := Default()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.Register(fs, Common, API)
	if _, err := Parse(fs, []string{"--config=" + file}, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), `unknown key "lissten"`) {
		t.Fatalf("unknown yaml key: %v", err)
	}
	c = Default()
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	c.Register(fs, Dispatch)
	_, err := Parse(fs, nil, func(k string) string {
		if k == "VITALS_RETRY_SCHEDULE" {
			return "5s,soon"
		}
		return ""
	})
	if err == nil || !strings.Contains(err.Error(), "VITALS_RETRY_SCHEDULE") {
		t.Fatalf("bad env: %v", err)
	}
}

func TestKafkaAndClickHouseTLSSettings(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "vitals.yaml")
	yml := "kafka_tls: true\nkafka_tls_ca: /etc/kafka/ca.pem\nkafka_sasl_mechanism: SCRAM-SHA-512\nkafka_sasl_user: from-yaml\n" +
		"clickhouse_tls: true\nclickhouse_tls_ca: /etc/clickhouse/ca.pem\n"
	if err := os.WriteFile(file, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"VITALS_KAFKA_SASL_PASSWORD":        "from-env",
		"VITALS_KAFKA_SASL_USER":            "from-env",
		"VITALS_CLICKHOUSE_TLS_SERVER_NAME": "ch.internal",
		"VITALS_KAFKA_TLS_SERVER_NAME":      "kafka.internal",
	}
	c := Default()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.Register(fs, Common, Kafka, Analytics)
	if _, err := Parse(fs, []string{"--config", file, "--kafka-tls-cert=/c.pem", "--kafka-tls-key", "/k.pem", "--kafka-sasl-user=vitals"},
		func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.KafkaTLS, want.KafkaTLSCA, want.KafkaTLSCert, want.KafkaTLSKey, want.KafkaTLSServerName =
		true, "/etc/kafka/ca.pem", "/c.pem", "/k.pem", "kafka.internal"
	want.KafkaSASLMechanism, want.KafkaSASLUser, want.KafkaSASLPassword = "SCRAM-SHA-512", "vitals", "from-env"
	want.ClickHouseTLS, want.ClickHouseTLSCA, want.ClickHouseTLSServerName = true, "/etc/clickhouse/ca.pem", "ch.internal"
	if c.KafkaTLS != want.KafkaTLS || c.KafkaTLSCA != want.KafkaTLSCA || c.KafkaTLSCert != want.KafkaTLSCert ||
		c.KafkaTLSKey != want.KafkaTLSKey || c.KafkaTLSServerName != want.KafkaTLSServerName ||
		c.KafkaSASLMechanism != want.KafkaSASLMechanism || c.KafkaSASLUser != want.KafkaSASLUser ||
		c.KafkaSASLPassword != want.KafkaSASLPassword || c.ClickHouseTLS != want.ClickHouseTLS ||
		c.ClickHouseTLSCA != want.ClickHouseTLSCA || c.ClickHouseTLSServerName != want.ClickHouseTLSServerName {
		t.Fatalf("got %+v\nwant %+v", c, want)
	}

	// The help says to prefer the environment for the password.
	if f := fs.Lookup("kafka-sasl-password"); f == nil || !strings.Contains(f.Usage, "VITALS_KAFKA_SASL_PASSWORD") {
		t.Errorf("--kafka-sasl-password help: %+v", f)
	}
	// Commands without ClickHouse do not take its settings.
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	c = Default()
	c.Register(fs, Common, Kafka)
	if fs.Lookup("clickhouse-tls") != nil || fs.Lookup("kafka-tls") == nil {
		t.Error("clickhouse-tls must belong to the Analytics group, kafka-tls to Kafka")
	}
}
