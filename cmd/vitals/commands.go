package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vitalshq/vitals/broker"
	"github.com/vitalshq/vitals/config"
	"github.com/vitalshq/vitals/ops"
	"github.com/vitalshq/vitals/schemas"
)

// setup parses flags of the given groups and returns the config, logger and
// a group owning everything the command starts.
func setup(ctx context.Context, name string, args []string, stderr io.Writer, groups []config.Group) (*env, error) {
	cfg := config.Default()
	fs := flag.NewFlagSet("vitals "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.Register(fs, groups...)
	rest, err := config.Parse(fs, args, os.Getenv)
	if err != nil {
		if err == flag.ErrHelp {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "vitals %s: unexpected arguments %q\n", name, rest)
		return nil, errUsage
	}
	log, err := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return nil, err
	}
	codec, err := schemas.New()
	if err != nil {
		return nil, err
	}
	return &env{cfg: cfg, log: log, brokers: cfg.KafkaBrokers, codec: codec,
		reg: ops.NewRegistry(), checks: &ops.Checks{}, g: newGroup(ctx, log)}, nil
}

// runAll is `vitals run`: every stage in one process, on an embedded broker
// unless --kafka-brokers names a cluster.
func runAll(ctx context.Context, args []string, _, stderr io.Writer) error {
	e, err := setup(ctx, "run", args, stderr,
		[]config.Group{config.Common, config.Kafka, config.Embedded, config.API, config.Processor, config.Dispatch, config.Analytics})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(e.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	e.generateMaster = true
	if len(e.brokers) == 0 {
		dir := filepath.Join(e.cfg.DataDir, "kafka")
		emb, err := broker.StartEmbedded(e.cfg.EmbeddedKafkaListen, dir, e.log)
		if err != nil {
			return err
		}
		defer emb.Close()
		e.brokers = emb.Addrs()
		e.log.Info("embedded Kafka broker (kfake) listening", "brokers", strings.Join(e.brokers, ","), "data_dir", dir)
	} else {
		e.log.Info("using external Kafka", "brokers", strings.Join(e.brokers, ","))
	}
	return e.runStages(ctx, true, true, true)
}

func runAPI(ctx context.Context, args []string, _, stderr io.Writer) error {
	e, err := setup(ctx, "api", args, stderr, []config.Group{config.Common, config.Kafka, config.API, config.Dispatch, config.Analytics})
	if err != nil {
		return err
	}
	return e.runStages(ctx, true, false, false)
}

func runProcessor(ctx context.Context, args []string, _, stderr io.Writer) error {
	e, err := setup(ctx, "processor", args, stderr, []config.Group{config.Common, config.Kafka, config.Ops, config.Processor})
	if err != nil {
		return err
	}
	return e.runStages(ctx, false, true, false)
}

func runDispatcher(ctx context.Context, args []string, _, stderr io.Writer) error {
	e, err := setup(ctx, "dispatcher", args, stderr, []config.Group{config.Common, config.Kafka, config.Ops, config.Dispatch, config.Analytics})
	if err != nil {
		return err
	}
	return e.runStages(ctx, false, false, true)
}

// runStages starts the chosen stages under e's group and waits for them.
func (e *env) runStages(ctx context.Context, withAPI, withProcessor, withDispatcher bool) (err error) {
	defer func() {
		e.g.Stop()
		if werr := e.g.Wait(); err == nil {
			err = werr
		}
		e.log.Info("stopped")
	}()
	if len(e.brokers) == 0 {
		return fmt.Errorf("%w: --kafka-brokers (or %s) is required", errUsage, config.EnvName("kafka-brokers"))
	}
	if len(e.cfg.RetrySchedule) == 0 {
		return fmt.Errorf("%w: --retry-schedule needs at least one duration, e.g. 5s,5m,30m", errUsage)
	}
	if err := e.kafkaSecurity().Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if err := e.prepareKafka(e.g.ctx); err != nil {
		return err
	}
	if !withAPI {
		if err := e.serveOps(e.g.ctx); err != nil {
			return err
		}
	}
	if withProcessor {
		if err := e.startProcessor(); err != nil {
			return err
		}
	}
	if withAPI || withDispatcher {
		eps, err := e.endpoints(e.g.ctx)
		if err != nil {
			return err
		}
		if withDispatcher {
			if err := e.startDispatcher(e.g.ctx, eps); err != nil {
				return err
			}
		}
		if withAPI {
			if _, err := e.startAPI(e.g.ctx, eps); err != nil {
				return err
			}
		}
	}
	e.log.Info("vitals ready")
	<-e.g.ctx.Done()
	return nil
}

// clientFlags are the flags of commands that talk to the API as a client.
type clientFlags struct {
	credentials string // bootstrap-client.json
	apiURL      string
	caFile      string
	insecureTLS bool
	logFormat   string
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.credentials, "credentials", "./data/bootstrap-client.json", "OAuth client credentials file written by `vitals run` / `vitals api`")
	fs.StringVar(&c.apiURL, "api-url", "", "API base URL (default: api_url from --credentials)")
	fs.StringVar(&c.caFile, "ca-file", "", "PEM certificate(s) to trust for the API (default: the self-signed certificate next to --credentials, data/tls/cert.pem)")
	fs.BoolVar(&c.insecureTLS, "insecure-skip-verify", false, "INSECURE: do not verify the API's TLS certificate")
	fs.StringVar(&c.logFormat, "log-format", "auto", "log format: auto (text on a terminal, JSON otherwise), text, json")
}

type credentials struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	TokenURL     string `json:"token_url"`
	APIURL       string `json:"api_url"`
	RequestKeyID string `json:"request_key_id"`
	RequestKey   string `json:"request_key"` // base64 ed25519 seed
}

func (c *clientFlags) load() (credentials, *http.Client, error) {
	var cr credentials
	b, err := os.ReadFile(c.credentials)
	if err != nil {
		return cr, nil, fmt.Errorf("credentials: %w (start `vitals run` first, or pass --credentials)", err)
	}
	if err := json.Unmarshal(b, &cr); err != nil {
		return cr, nil, fmt.Errorf("credentials %s: %w", c.credentials, err)
	}
	if c.apiURL != "" {
		cr.APIURL = strings.TrimSuffix(c.apiURL, "/")
		cr.TokenURL = cr.APIURL + "/oauth/token"
	}
	ca := c.caFile
	if ca == "" {
		ca = filepath.Join(filepath.Dir(c.credentials), "tls", "cert.pem")
	}
	hc, err := apiHTTPClient(cr.APIURL, ca, c.insecureTLS)
	return cr, hc, err
}

func runSimulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		cf        clientFlags
		customers int
		rate      float64
		batch     int
		journeys  string
		prefix    string
	)
	fs := flag.NewFlagSet("vitals simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf.register(fs)
	fs.IntVar(&customers, "customers", 6, "number of simulated customers")
	fs.Float64Var(&rate, "rate", 200, "events per second (0: as fast as the API accepts)")
	fs.IntVar(&batch, "batch", 50, "events per request (1–1000)")
	fs.StringVar(&journeys, "journeys", "healthy,churning,expanding", "journeys cycled over customers")
	fs.StringVar(&prefix, "prefix", "", "customer id prefix (default: cust_<unix time>)")
	if _, err := config.Parse(fs, args, os.Getenv); err != nil {
		return err
	}
	log, err := newLogger(stderr, cf.logFormat, "info")
	if err != nil {
		return err
	}
	cr, hc, err := cf.load()
	if err != nil {
		return err
	}
	if prefix == "" {
		prefix = fmt.Sprintf("cust_%d", time.Now().Unix())
	}
	return simulateRun(ctx, log, stdout, cr, hc, customers, rate, batch, strings.Split(journeys, ","), prefix)
}

func runListen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		cf       clientFlags
		listen   string
		secret   string
		register bool
		types    string
	)
	fs := flag.NewFlagSet("vitals listen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf.register(fs)
	fs.StringVar(&listen, "listen", "127.0.0.1:8787", "receiver listen address")
	fs.StringVar(&secret, "secret", "", "endpoint signing secret (whsec_…); without it, --register creates an endpoint and uses its secret")
	fs.BoolVar(&register, "register", true, "register this receiver as an endpoint through the API (needs --credentials)")
	fs.StringVar(&types, "event-types", "*", "event types to subscribe to when registering")
	if _, err := config.Parse(fs, args, os.Getenv); err != nil {
		return err
	}
	log, err := newLogger(stderr, cf.logFormat, "info")
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", listen, err)
	}
	defer ln.Close()
	url := "http://" + advertised(ln.Addr()) + "/webhooks"
	if secret == "" {
		if !register {
			return fmt.Errorf("%w: give --secret, or let --register create an endpoint", errUsage)
		}
		cr, hc, err := cf.load()
		if err != nil {
			return err
		}
		// Its own context: the token source must outlive ctx to clean up.
		client := endpointsClient(context.Background(), hc, cr)
		id, s, err := registerEndpoint(ctx, client, cr, url, strings.Split(types, ","))
		if err != nil {
			return err
		}
		secret = s
		log.Info("registered endpoint; it is deleted again when listen stops", "id", id, "url", url, "event_types", types)
		defer func() {
			dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := deleteEndpoint(dctx, client, cr, id); err != nil {
				log.Warn("could not delete the endpoint; delete it with DELETE /v1/endpoints/"+id, "err", err)
			} else {
				log.Info("deleted endpoint", "id", id)
			}
		}()
	}
	return listenServe(ctx, log, stdout, ln, url, secret)
}
