package analytics

import (
	"context"
	"fmt"
)

// CountAttempts returns how many attempt rows for eventID ClickHouse holds,
// counting each attempt_id once (delivery is at least once).
func (w *Writer) CountAttempts(ctx context.Context, eventID string) (uint64, error) {
	if w.conn == nil {
		return 0, ErrNotConfigured
	}
	var n uint64
	err := w.conn.QueryRow(ctx,
		"SELECT uniqExact(attempt_id) FROM "+w.cfg.database+".webhook_attempts WHERE event_id = ?", eventID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count attempts of %s: %w", eventID, err)
	}
	return n, nil
}

// Attempts returns the attempt rows for eventID, oldest first, as stored
// (duplicates from an at-least-once replay included; timestamps in whole
// seconds).
func (w *Writer) Attempts(ctx context.Context, eventID string) ([]WebhookAttempt, error) {
	if w.conn == nil {
		return nil, ErrNotConfigured
	}
	rows, err := w.conn.Query(ctx, "SELECT "+attemptColumns+" FROM "+w.cfg.database+
		".webhook_attempts WHERE event_id = ? ORDER BY timestamp, attempt, attempt_id", eventID)
	if err != nil {
		return nil, fmt.Errorf("read attempts of %s: %w", eventID, err)
	}
	defer rows.Close()
	var out []WebhookAttempt
	for rows.Next() {
		a, err := scanAttempt(rows)
		if err != nil {
			return nil, fmt.Errorf("read attempts of %s: %w", eventID, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read attempts of %s: %w", eventID, err)
	}
	return out, nil
}
