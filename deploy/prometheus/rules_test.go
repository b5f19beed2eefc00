package prometheusrules_test

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vitalshq/vitals/alerting"
)

// The rules are valid and their unit tests pass, among them: a breaker
// open for 6 minutes fires VitalsWebhookBreakerOpen, one open for 4 does
// not yet.
func TestPromtoolChecksAndTestsTheRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (%v): `make deps` installs it (Debian package prometheus, deploy/prometheus/promtool.sh install)", err)
	}
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, promtool, args...).CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// Every metric an alert rule reads is registered by the code, so no rule
// silently watches a series that never exists.
func TestAlertsUseRegisteredMetrics(t *testing.T) {
	registered := registeredMetrics(t, filepath.Join("..", ".."))
	for _, known := range []string{"vitals_webhook_attempts_total", "vitals_analytics_spool_bytes", "vitals_consumer_lag"} {
		if !registered[known] {
			t.Fatalf("the source scan missed %s: it finds %d metrics: %v", known, len(registered), registered)
		}
	}
	b, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &file); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	metricName := regexp.MustCompile(`\bvitals_[a-z0-9_]+`)
	rules := 0
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			rules++
			names := metricName.FindAllString(r.Expr, -1)
			if len(names) == 0 {
				t.Errorf("alert %s reads no vitals_ metric: %s", r.Alert, r.Expr)
			}
			for _, n := range names {
				if !registered[n] && !registered[histogramBase(n)] {
					t.Errorf("alert %s reads %s, which no code registers", r.Alert, n)
				}
			}
		}
	}
	if rules == 0 {
		t.Fatal("alerts.yml has no rules")
	}
	for _, r := range alerting.DefaultRules() {
		if !registered[r.Metric] {
			t.Errorf("package alerting's rule %s reads %s, which no code registers", r.Name, r.Metric)
		}
	}
}

// histogramBase strips the series suffix of a histogram or summary.
func histogramBase(name string) string {
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, s); ok {
			return base
		}
	}
	return name
}

// registeredMetrics returns the names of the metrics the non-test Go code
// under root creates: prometheus.{Counter,Gauge,Histogram,Summary}Opts
// literals (Namespace_Subsystem_Name) and prometheus.NewDesc calls, whose
// names are string literals or constants.
func registeredMetrics(t *testing.T, root string) map[string]bool {
	t.Helper()
	type file struct {
		pkg  string // package directory
		name string // package name
		f    *ast.File
	}
	var files []file
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "vendor" || n == "node_modules" || n == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files = append(files, file{pkg: filepath.Dir(path), name: f.Name.Name, f: f})
		return nil
	})
	if err != nil {
		t.Fatalf("scan the source: %v", err)
	}

	// String constants, by package directory and by package name.
	byDir := map[string]map[string]string{}
	byPkg := map[string]map[string]string{}
	for _, fl := range files {
		for _, decl := range fl.f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, _ := strconv.Unquote(lit.Value)
						if byDir[fl.pkg] == nil {
							byDir[fl.pkg] = map[string]string{}
						}
						if byPkg[fl.name] == nil {
							byPkg[fl.name] = map[string]string{}
						}
						byDir[fl.pkg][n.Name], byPkg[fl.name][n.Name] = v, v
					}
				}
			}
		}
	}
	str := func(dir string, e ast.Expr) (string, bool) {
		switch e := e.(type) {
		case *ast.BasicLit:
			if e.Kind == token.STRING {
				v, err := strconv.Unquote(e.Value)
				return v, err == nil
			}
		case *ast.Ident:
			v, ok := byDir[dir][e.Name]
			return v, ok
		case *ast.SelectorExpr:
			if x, ok := e.X.(*ast.Ident); ok {
				v, ok := byPkg[x.Name][e.Sel.Name]
				return v, ok
			}
		}
		return "", false
	}
	isProm := func(e ast.Expr, names ...string) bool {
		sel, ok := e.(*ast.SelectorExpr)
		if !ok {
			return false
		}
		x, ok := sel.X.(*ast.Ident)
		return ok && x.Name == "prometheus" && slices.Contains(names, sel.Sel.Name)
	}

	out := map[string]bool{}
	for _, fl := range files {
		ast.Inspect(fl.f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CompositeLit:
				if !isProm(n.Type, "CounterOpts", "GaugeOpts", "HistogramOpts", "SummaryOpts", "Opts") {
					return true
				}
				parts := map[string]string{}
				for _, el := range n.Elts {
					kv, ok := el.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					key, ok := kv.Key.(*ast.Ident)
					if !ok {
						continue
					}
					if v, ok := str(fl.pkg, kv.Value); ok {
						parts[key.Name] = v
					}
				}
				var name []string
				for _, p := range []string{parts["Namespace"], parts["Subsystem"], parts["Name"]} {
					if p != "" {
						name = append(name, p)
					}
				}
				if parts["Name"] != "" {
					out[strings.Join(name, "_")] = true
				}
			case *ast.CallExpr:
				if isProm(n.Fun, "NewDesc") && len(n.Args) > 0 {
					if v, ok := str(fl.pkg, n.Args[0]); ok {
						out[v] = true
					}
				}
			}
			return true
		})
	}
	return out
}
