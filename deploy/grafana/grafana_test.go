package grafana_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"go.yaml.in/yaml/v3"

	"github.com/vitalshq/vitals/analytics"
	"github.com/vitalshq/vitals/internal/testenv"
)

// panel is what the tests read of a Grafana panel.
type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		RefID      string `json:"refId"`
		Expr       string `json:"expr"`
		RawSQL     string `json:"rawSql"`
		EditorType string `json:"editorType"`
		QueryType  string `json:"queryType"`
		Format     *int   `json:"format"`
		Datasource struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
}

type board struct {
	file   string
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

// query is one panel query, named for failure messages.
type query struct{ where, text string }

func loadBoards(t *testing.T) []board {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("dashboards", "*.json"))
	if err != nil || len(files) < 2 {
		t.Fatalf("dashboards: %v %v", files, err)
	}
	var out []board
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d board
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s does not parse: %v", f, err)
		}
		d.file = f
		out = append(out, d)
	}
	return out
}

// datasources returns the provisioned data sources: uid → type.
func datasources(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("provisioning", "datasources", "vitals.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			UID      string         `yaml:"uid"`
			Type     string         `yaml:"type"`
			JSONData map[string]any `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil || f.APIVersion != 1 {
		t.Fatalf("datasources provisioning: %v (apiVersion %d)", err, f.APIVersion)
	}
	out := map[string]string{}
	for _, d := range f.Datasources {
		out[d.UID] = d.Type
	}
	return out
}

// queries returns every panel query of the data source type typ.
func queries(t *testing.T, boards []board, typ string) []query {
	t.Helper()
	var out []query
	for _, d := range boards {
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				if tg.Datasource.Type != typ {
					continue
				}
				text := tg.Expr
				if typ != "prometheus" {
					text = tg.RawSQL
				}
				out = append(out, query{where: fmt.Sprintf("%s panel %q query %s", d.file, p.Title, tg.RefID), text: text})
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %s queries in the dashboards", typ)
	}
	return out
}

// Every dashboard parses, has a unique uid, a layout within Grafana's 24
// columns, and panels whose queries name a provisioned data source in the
// form its plugin reads.
func TestDashboardsParseAndUseProvisionedDatasources(t *testing.T) {
	ds := datasources(t)
	if ds["vitals-prometheus"] != "prometheus" || ds["vitals-clickhouse"] != "grafana-clickhouse-datasource" {
		t.Fatalf("provisioned data sources: %v", ds)
	}
	var provider struct {
		Providers []struct {
			Options struct{ Path string } `yaml:"options"`
		} `yaml:"providers"`
	}
	b, err := os.ReadFile(filepath.Join("provisioning", "dashboards", "vitals.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &provider); err != nil || len(provider.Providers) != 1 || provider.Providers[0].Options.Path == "" {
		t.Fatalf("dashboards provisioning: %v %+v", err, provider)
	}

	uids := map[string]string{}
	used := map[string]bool{}
	for _, d := range loadBoards(t) {
		if d.UID == "" || d.Title == "" || uids[d.UID] != "" {
			t.Errorf("%s: uid %q (also %s), title %q", d.file, d.UID, uids[d.UID], d.Title)
		}
		uids[d.UID] = d.file
		ids := map[int]bool{}
		for _, p := range d.Panels {
			if ids[p.ID] || p.ID == 0 {
				t.Errorf("%s: panel %q has id %d, not unique", d.file, p.Title, p.ID)
			}
			ids[p.ID] = true
			if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("%s: panel %q is outside the grid: %+v", d.file, p.Title, p.GridPos)
			}
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || ds[p.Datasource.UID] != p.Datasource.Type || len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has data source %+v (provisioned: %v) and %d queries", d.file, p.Title, p.Datasource, ds, len(p.Targets))
				continue
			}
			used[p.Datasource.UID] = true
			for _, tg := range p.Targets {
				if tg.Datasource.UID != p.Datasource.UID || tg.RefID == "" {
					t.Errorf("%s: panel %q query %q has data source %q", d.file, p.Title, tg.RefID, tg.Datasource.UID)
				}
				switch tg.Datasource.Type {
				case "prometheus":
					if strings.TrimSpace(tg.Expr) == "" {
						t.Errorf("%s: panel %q query %s has no expr", d.file, p.Title, tg.RefID)
					}
				case "grafana-clickhouse-datasource":
					// The plugin's SQL editor form: format 0 for time
					// series, 1 for tables (sqlds' numbering).
					want := map[string]int{"timeseries": 0, "table": 1}
					f, ok := want[tg.QueryType]
					if tg.EditorType != "sql" || !ok || tg.Format == nil || *tg.Format != f || strings.TrimSpace(tg.RawSQL) == "" {
						t.Errorf("%s: panel %q query %s: editorType %q queryType %q format %v", d.file, p.Title, tg.RefID, tg.EditorType, tg.QueryType, tg.Format)
					}
					if p.Type == "timeseries" && tg.QueryType != "timeseries" {
						t.Errorf("%s: time series panel %q has a %s query", d.file, p.Title, tg.QueryType)
					}
				}
			}
		}
	}
	if !used["vitals-prometheus"] || !used["vitals-clickhouse"] {
		t.Errorf("data sources used by the dashboards: %v", used)
	}
}

// Every PromQL query is accepted by a real Prometheus (Debian's, started
// empty on a loopback port), and every vitals_ metric it reads is one the
// code registers.
func TestPrometheusQueries(t *testing.T) {
	qs := queries(t, loadBoards(t), "prometheus")
	source := sourceText(t, filepath.Join("..", ".."))
	metric := regexp.MustCompile(`\bvitals_[a-z0-9_]+`)
	for _, q := range qs {
		names := metric.FindAllString(q.text, -1)
		if len(names) == 0 {
			t.Errorf("%s reads no vitals_ metric: %s", q.where, q.text)
		}
		for _, n := range names {
			if !registered(source, n) {
				t.Errorf("%s reads %s, which no code registers", q.where, n)
			}
		}
	}

	base := startPrometheus(t)
	grafanaVars := strings.NewReplacer("$__rate_interval", "1m", "$__interval", "1m", "$__range", "1h")
	for _, q := range qs {
		u := base + "/api/v1/query?" + url.Values{"query": {grafanaVars.Replace(q.text)}}.Encode()
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		var ans struct{ Status, ErrorType, Error string }
		err = json.NewDecoder(resp.Body).Decode(&ans)
		resp.Body.Close()
		if err != nil || ans.Status != "success" {
			t.Errorf("%s: Prometheus refuses %s: %s %s %v", q.where, q.text, ans.ErrorType, ans.Error, err)
		}
	}
}

// startPrometheus runs the prometheus binary with an empty configuration
// and returns its base URL; it is stopped when t ends.
func startPrometheus(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus not found (%v): `make deps` installs Debian's prometheus package", err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global: {scrape_interval: 1m}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cancel(); <-exited })
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		select {
		case <-exited:
			t.Fatalf("prometheus exited:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 30s:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sourceText returns the non-test Go source under root.
func sourceText(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		b.Write(src)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// registered reports whether the source creates metric name: spelled
// whole, or as Namespace "vitals", a Subsystem and a Name (series
// suffixes of histograms stripped).
func registered(source, name string) bool {
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, s); ok && registered(source, base) {
			return true
		}
	}
	if strings.Contains(source, `"`+name+`"`) {
		return true
	}
	rest, ok := strings.CutPrefix(name, "vitals_")
	if !ok {
		return false
	}
	for i := range len(rest) {
		if rest[i] == '_' &&
			strings.Contains(source, `Subsystem: "`+rest[:i]+`"`) && strings.Contains(source, `Name: "`+rest[i+1:]+`"`) {
			return true
		}
	}
	return false
}

// Every ClickHouse query runs on the schema of the analytics migrations
// and finds the fixture rows: the tables, columns and functions exist.
// Grafana's macros are expanded as the plugin does, except the time
// bucket, for which ClickHouse 18.16 (the tested server) lacks
// toStartOfInterval and gets toStartOfMinute.
func TestClickHouseQueries(t *testing.T) {
	qs := queries(t, loadBoards(t), "grafana-clickhouse-datasource")
	addr := testenv.ClickHouse(t)
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := testenv.UniqueName(t, "vitals_grafana")
	db = strings.NewReplacer("-", "_", ".", "_").Replace(db)
	defer func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) }()
	if err := analytics.Migrate(ctx, conn, db); err != nil {
		t.Fatal(err)
	}

	now := time.Now().UTC().Truncate(time.Second)
	ts := func(ago time.Duration) string { return now.Add(-ago).Format("2006-01-02 15:04:05") }
	// INSERT … SELECT: the native protocol sends no data block with it.
	attempt := func(id, event, typ string, try, status int, outcome, class string, ms int, ago time.Duration) string {
		return fmt.Sprintf("SELECT '%s', '%s', '%s', 'c1', 'ep_1', 'hooks.example', toUInt16(%d), toUInt16(%d), '%s', '%s', toUInt32(%d), toDateTime('%s')",
			id, event, typ, try, status, outcome, class, ms, ts(ago))
	}
	audit := func(id string, seq int, client, route string, status, ms int, decision, reason string, ago time.Duration) string {
		return fmt.Sprintf("SELECT '%s', toDateTime('%s'), toUInt64(0), 'i1', toUInt64(%d), '%s', '%s', toUInt16(%d), toUInt64(%d), '%s', '%s'",
			id, ts(ago), seq, client, route, status, ms, decision, reason)
	}
	fixtures := []string{
		"INSERT INTO {db}.webhook_attempts (attempt_id, event_id, event_type, customer_id, endpoint_id, url_host, attempt, status_code, outcome, error_class, latency_ms, timestamp) " +
			strings.Join([]string{
				attempt("a1", "e1", "churn_risk_detected", 1, 200, "delivered", "", 40, 10*time.Minute),
				attempt("a2", "e2", "health_score_change", 1, 503, "failed", "http_5xx", 900, 9*time.Minute),
				attempt("a3", "e2", "health_score_change", 2, 200, "delivered", "", 60, 8*time.Minute),
				attempt("a3", "e2", "health_score_change", 2, 200, "delivered", "", 60, 8*time.Minute), // a replayed copy
			}, " UNION ALL "),
		"INSERT INTO {db}.derived_events (event_id, event_type, customer_id, reason, summary, detail, explanation, timestamp) " +
			"SELECT 'e1', 'churn_risk_detected', 'c1', 'usage_decline_30_percent', 'risk high', '{}', '{}', toDateTime('" + ts(10*time.Minute) + "')",
		"INSERT INTO {db}.endpoint_state_changes (endpoint_id, from_state, to_state, reason, timestamp) " +
			"SELECT 'ep_1', 'closed', 'open', 'failures', toDateTime('" + ts(9*time.Minute) + "')",
		"INSERT INTO {db}.api_audit (id, time, time_ms, instance, seq, client_id, route, status, latency_ms, decision, reason) " +
			strings.Join([]string{
				audit("r1", 1, "vc_1", "POST /v1/events", 202, 12, "allowed", "", 5*time.Minute),
				audit("r2", 2, "vc_1", "POST /v1/events", 429, 1, "denied", "rate_limited", 4*time.Minute),
				audit("r3", 3, "", "POST /oauth/token", 401, 3, "allowed", "", 3*time.Minute),
			}, " UNION ALL "),
	}
	for _, f := range fixtures {
		if err := conn.Exec(ctx, strings.ReplaceAll(f, "{db}", db)); err != nil {
			t.Fatalf("fixture: %v\n%s", err, f)
		}
	}

	from, to := now.Add(-time.Hour).Unix(), now.Add(time.Minute).Unix()
	timeFilter := regexp.MustCompile(`\$__timeFilter\(([a-z_]+)\)`)
	timeInterval := regexp.MustCompile(`\$__timeInterval\(([a-z_]+)\)`)
	for _, q := range qs {
		sql := timeFilter.ReplaceAllString(q.text, fmt.Sprintf("$1 >= toDateTime(%d) AND $1 <= toDateTime(%d)", from, to))
		sql = timeInterval.ReplaceAllString(sql, "toStartOfMinute(toDateTime($1))")
		sql = strings.ReplaceAll(sql, "vitals.", db+".")
		if strings.Contains(sql, "$") {
			t.Errorf("%s: a macro the test does not expand: %s", q.where, sql)
			continue
		}
		rows, err := conn.Query(ctx, sql)
		if err != nil {
			t.Errorf("%s: %v\n%s", q.where, err, sql)
			continue
		}
		n := 0
		for rows.Next() {
			n++
		}
		if err := rows.Err(); err != nil {
			t.Errorf("%s: %v", q.where, err)
		}
		rows.Close()
		if n == 0 {
			t.Errorf("%s: no rows from the fixture:\n%s", q.where, sql)
		}
	}
}

// docker-compose.yml mounts what the provisioning expects: the dashboards
// where the provider reads them, the home dashboard among them, the
// Prometheus configuration (valid for promtool, its rule files beside it)
// and its scrape targets are compose services.
func TestComposeProvisionsMonitoring(t *testing.T) {
	var compose struct {
		Services map[string]struct {
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
		} `yaml:"services"`
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	mounts := func(service string) map[string]string { // host path → container path
		out := map[string]string{}
		for _, v := range compose.Services[service].Volumes {
			parts := strings.Split(strings.TrimSpace(strings.SplitN(v, "#", 2)[0]), ":")
			if len(parts) >= 2 {
				out[parts[0]] = parts[1]
			}
		}
		return out
	}
	grafana := mounts("grafana")
	for host, dir := range map[string]string{
		"./deploy/grafana/provisioning/datasources": "/etc/grafana/provisioning/datasources",
		"./deploy/grafana/provisioning/dashboards":  "/etc/grafana/provisioning/dashboards",
		"./deploy/grafana/dashboards":               "/etc/grafana/dashboards/vitals",
	} {
		if grafana[host] != dir {
			t.Errorf("grafana mounts %s at %q, want %s", host, grafana[host], dir)
		}
	}
	var provider struct {
		Providers []struct {
			Options struct{ Path string } `yaml:"options"`
		} `yaml:"providers"`
	}
	b, err = os.ReadFile(filepath.Join("provisioning", "dashboards", "vitals.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &provider); err != nil || len(provider.Providers) == 0 || provider.Providers[0].Options.Path != grafana["./deploy/grafana/dashboards"] {
		t.Errorf("dashboards provider reads %+v, compose mounts them at %s (%v)", provider, grafana["./deploy/grafana/dashboards"], err)
	}
	env := compose.Services["grafana"].Environment
	home, ok := strings.CutPrefix(env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"], "/etc/grafana/dashboards/vitals/")
	if _, err := os.Stat(filepath.Join("dashboards", home)); !ok || err != nil {
		t.Errorf("home dashboard %q: %v", env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"], err)
	}
	if !strings.Contains(env["GF_INSTALL_PLUGINS"], "grafana-clickhouse-datasource") || env["CLICKHOUSE_USER"] == "" {
		t.Errorf("grafana environment: %v", env)
	}

	if mounts("prometheus")["./deploy/prometheus"] != "/etc/prometheus" ||
		!strings.Contains(strings.Join(compose.Services["prometheus"].Command, " "), "--config.file=/etc/prometheus/prometheus.yml") {
		t.Errorf("prometheus service: %+v", compose.Services["prometheus"])
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (%v): `make deps` installs Debian's prometheus package", err)
	}
	if out, err := exec.Command(promtool, "check", "config", filepath.Join("..", "prometheus", "prometheus.yml")).CombinedOutput(); err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out)
	}
	var prom struct {
		ScrapeConfigs []struct {
			JobName string `yaml:"job_name"`
			DNS     []struct {
				Names []string `yaml:"names"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	b, err = os.ReadFile(filepath.Join("..", "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &prom); err != nil {
		t.Fatal(err)
	}
	scraped := 0
	for _, sc := range prom.ScrapeConfigs {
		for _, d := range sc.DNS {
			for _, name := range d.Names {
				svc, ok := compose.Services[name]
				port := fmt.Sprintf(":%d", d.Port)
				if !ok || !strings.Contains(strings.Join(svc.Command, " "), port) {
					t.Errorf("job %s scrapes %s%s: no such compose service listening there", sc.JobName, name, port)
				}
				scraped++
			}
		}
	}
	if scraped < 3 {
		t.Errorf("prometheus scrapes %d Vitals services, want api, processor and dispatcher", scraped)
	}
}
