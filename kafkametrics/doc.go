// Package kafkametrics exports, as Prometheus gauges, what only the Kafka
// cluster knows about the pipeline: how far each consumer group is behind
// (vitals_consumer_lag{group,topic}) and how many records wait in the retry
// tiers and the dead-letter topics (vitals_topic_depth{topic,kind}).
//
// A Collector asks the cluster every interval (kadm: describe the groups,
// fetch their committed offsets, list start and end offsets) from one
// goroutine owned by Run, and serves the latest answer at each scrape, so a
// scrape never waits on Kafka. The figures are offsets, not records: on a
// topic written in transactions the commit markers count too.
//
// It must never consume records or commit offsets: it only reads metadata.
package kafkametrics
