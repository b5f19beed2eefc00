package replay

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/dispatcher/task"
	"github.com/vitalshq/vitals/topics"
)

// Queue hands delivery tasks to the dispatcher by writing them to the first
// retry tier, topics.Retry(firstDelay): the dispatcher's retry consumer
// delivers every task whose DueAt has passed, so a task due now goes out at
// once, then follows the normal retry schedule if it fails.
type Queue struct {
	cl    *kgo.Client
	topic string
}

// NewQueue returns a queue producing with cl to the tier of firstDelay, the
// first delay of the dispatcher's retry schedule (the tier must exist).
func NewQueue(cl *kgo.Client, firstDelay time.Duration) *Queue {
	return &Queue{cl: cl, topic: topics.Retry(firstDelay)}
}

// Topic returns the retry tier tasks are written to.
func (q *Queue) Topic() string { return q.topic }

// Enqueue writes t and returns once Kafka acknowledged it.
func (q *Queue) Enqueue(ctx context.Context, t task.Task) error {
	if err := q.cl.ProduceSync(ctx, t.Record(q.topic)).FirstErr(); err != nil {
		return fmt.Errorf("enqueue %s for %s: %w", t.EventID, t.EndpointID, err)
	}
	return nil
}
