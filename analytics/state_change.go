package analytics

import (
	"context"
	"fmt"
	"time"
)

// EndpointStateChange is one row of the ClickHouse table
// endpoint_state_changes: a webhook endpoint's circuit breaker (or its
// enabled state) moved From one state To another, e.g. "closed" → "open".
type EndpointStateChange struct {
	EndpointID string    `json:"endpoint_id"`
	From       string    `json:"from"`
	To         string    `json:"to"`
	Reason     string    `json:"reason"`
	Timestamp  time.Time `json:"timestamp"` // UTC, stored in whole seconds
}

// stateChangeColumns lists endpoint_state_changes' columns in insert order.
const stateChangeColumns = "endpoint_id, from_state, to_state, reason, timestamp"

// AppendStateChange inserts one state change at once. Transitions are rare
// (a breaker opens at most once per open period), so they skip the batch
// and the spool: the row is in ClickHouse when it returns nil, and lost (the
// caller logs it) when ClickHouse is down.
func (w *Writer) AppendStateChange(ctx context.Context, c EndpointStateChange) error {
	if w.conn == nil {
		return ErrNotConfigured
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.writeTimeout)
	defer cancel()
	if !w.stateReady.Load() {
		// Run may not have migrated yet; migrating is idempotent.
		if err := Migrate(ctx, w.conn, w.cfg.database); err != nil {
			return fmt.Errorf("append state change of %s: %w", c.EndpointID, err)
		}
		w.stateReady.Store(true)
	}
	b, err := w.conn.PrepareBatch(ctx, "INSERT INTO "+w.cfg.database+".endpoint_state_changes ("+stateChangeColumns+")")
	if err != nil {
		return fmt.Errorf("append state change of %s: %w", c.EndpointID, err)
	}
	defer b.Close()
	if err := b.Append(c.EndpointID, c.From, c.To, c.Reason, c.Timestamp.UTC()); err != nil {
		return fmt.Errorf("append state change of %s: %w", c.EndpointID, err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("append state change of %s: %w", c.EndpointID, err)
	}
	return nil
}

// StateChanges returns the state changes of endpointID, oldest first.
func (w *Writer) StateChanges(ctx context.Context, endpointID string) ([]EndpointStateChange, error) {
	if w.conn == nil {
		return nil, ErrNotConfigured
	}
	rows, err := w.conn.Query(ctx, "SELECT "+stateChangeColumns+" FROM "+w.cfg.database+
		".endpoint_state_changes WHERE endpoint_id = ? ORDER BY timestamp", endpointID)
	if err != nil {
		return nil, fmt.Errorf("read state changes of %s: %w", endpointID, err)
	}
	defer rows.Close()
	var out []EndpointStateChange
	for rows.Next() {
		var c EndpointStateChange
		if err := rows.Scan(&c.EndpointID, &c.From, &c.To, &c.Reason, &c.Timestamp); err != nil {
			return nil, fmt.Errorf("read state changes of %s: %w", endpointID, err)
		}
		c.Timestamp = c.Timestamp.UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read state changes of %s: %w", endpointID, err)
	}
	return out, nil
}
