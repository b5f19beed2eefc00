// Package prometheusrules holds no code: it is the home of Vitals'
// Prometheus alert rules (alerts.yml) and their unit tests
// (alerts_test.yml), and its Go tests run `promtool check rules` and
// `promtool test rules` in `make test` and check that every metric the
// rules (and package alerting's rules) name is registered by the code.
package prometheusrules
