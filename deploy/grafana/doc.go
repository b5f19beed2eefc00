// Package grafana holds no code: it is the home of Vitals' Grafana
// dashboards (dashboards/*.json: the pipeline from Prometheus, analytics
// from ClickHouse) and their provisioning (provisioning/, mounted by
// docker-compose.yml). Its Go tests check that every dashboard parses and
// refers to a provisioned data source, that every PromQL query is accepted
// by a real Prometheus and reads metrics the code registers, and that
// every ClickHouse query runs on the schema the analytics migrations
// create.
package grafana
