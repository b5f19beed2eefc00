// Package dashboard is the built-in live dashboard: a small page of our own
// (HTML, CSS and vanilla JavaScript embedded in the binary, no external
// resources) at /dashboard/, and the JSON it polls every two seconds,
// GET /v1/dashboard/stats.
//
// The page signs in by itself: it runs the OAuth authorization code flow
// with PKCE (S256) against the API's own /oauth/authorize and /oauth/token
// as the public client ClientID, whose redirect URI is <public URL>/dashboard/,
// keeps the access and refresh tokens in sessionStorage (never
// localStorage: they end with the tab), refreshes the access token before it
// expires and signs in again when it cannot. The stats call needs scope
// analytics:read.
//
// The numbers come from the process itself: Stats reads the Prometheus
// registry every stage of the process registers with (deliveries, attempt
// latency, breakers, consumer lag, rate-limit decisions) and keeps a short
// history of samples to turn counters into rates; the health-band
// distribution and the recent churn alerts come from the health read model.
// In `vitals run` that is the whole pipeline; an API instance of a split
// deployment sees only its own process's metrics, and Grafana
// (deploy/grafana) is the dashboard of the whole deployment.
//
// It must never load anything from another origin, nor keep a token
// anywhere but the tab's sessionStorage.
package dashboard
