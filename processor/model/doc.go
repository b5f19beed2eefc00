// Package model is Vitals' default customer health model: pure, event-time
// based and explainable. Model.Apply folds one event.CustomerEvent into the
// customer's State and returns the derived events it causes
// (health_score_change, churn_risk_detected, expansion_ready), each with an
// explanation. StateCodec writes a State as the Avro record of the
// changelog topic vitals.customer-state.v1 and reads it back.
//
// This package must never import Kafka or any transport, read the wall
// clock, use randomness or keep package-level mutable state: the same
// events applied to the same State give the same State and the same derived
// events, ids and explanations included. That is what lets the processor
// restore a State from its changelog and continue exactly where it was.
//
// Every number below is a Config key (deploy/model.yaml spells them all,
// with defaults; LoadConfig reads such a file over DefaultConfig and
// Validate names the key of each bad setting). Key names are given in
// brackets.
//
// # Event time and input hygiene
//
// The model's clock is State.Now, the latest event time applied for the
// customer (event times are truncated to the millisecond, the wire's
// precision). Days are UTC calendar days since 1970-01-01 (Day).
//
//   - Out of order: an event up to [input.late_grace] = 48h behind Now is
//     applied in its own day's bucket; statuses (ticket, invoice, NPS,
//     contract, sponsor) keep the newest by event time, so a late update
//     never overrides a newer one. Older events are not applied:
//     Result.Skipped = SkippedLate, for the caller to count and log.
//   - Duplicates: an event whose event_id was applied with an event time
//     less than [input.dedupe_window] = 24h apart is SkippedDuplicate. Ids
//     are forgotten once 24h behind Now, and at most [input.dedupe_max_ids]
//     = 4096 are kept per customer (past that, the oldest by event time go
//     first: a customer sending more than 4096 events a day is deduplicated
//     against its latest 4096 only).
//   - An event without a payload is SkippedEmpty.
//
// # Health score
//
// score = round(Σ weight × component), 0–100, with [weights] (must sum to 1
// within 1e-9): usage 0.30, engagement 0.15, support 0.20, payment 0.15,
// sentiment 0.10, adoption 0.10. A component without data scores
// [neutral_component] = 50. Bands [bands]: green ≥ 70, yellow ≥ 40, red
// below.
//
//   - usage = utilisation_share × U + (1 − utilisation_share) × T, with
//     [usage.utilisation_share] = 0.7. U = min(100, 100 × u /
//     [usage.full_utilisation] 0.8), u the mean seat utilisation (active
//     users / seats, the contract's seats when a report has none) of the
//     usage days within the last [usage.utilisation_days] = 7 days (the
//     latest report when none is that recent) — the mean keeps weekends and
//     daily noise from moving the score. T is the 30-day trend: usage is
//     kept as daily buckets (the day's highest active_users) over 2 ×
//     [usage.trend_window_days] = 60 days; trend = mean daily active users
//     of the trailing 30 days / mean of the 30 before, known once each
//     window has [usage.min_trend_days] = 7 days with a report. T = 100
//     when the trend is unknown or ≥ 1, else max(0, 100 −
//     [usage.decline_points_per_percent] 2 × decline in percent).
//   - engagement = (1 − [engagement.exec_login_share] 0.2) × L + 0.2 × E.
//     L = min(100, 100 × days with a login in the window / (window ×
//     [engagement.engaged_day_share] 0.5)); the window is
//     [engagement.window_days] = 14 days, or the days since first seen when
//     fewer. E = 100 when an executive logged in within the window. Neutral
//     while the customer is younger than the window and has no login.
//   - support = max(0, 100 − 10 per open ticket [support.open_penalty] − 10
//     more per open high/urgent one [support.high_priority_penalty] − 40 per
//     escalated ticket [support.escalated_penalty]). Resolved tickets are
//     remembered [support.resolved_keep] = 720h.
//   - payment = max(0, 100 − 50 per failed or overdue invoice
//     [payment.unpaid_penalty]); an invoice that later succeeds stops
//     counting. Paid invoices are remembered [payment.settled_keep] = 720h.
//   - sentiment = 10 × the latest NPS. Detractor ≤ [sentiment.detractor_max]
//     6, promoter ≥ [sentiment.promoter_min] 9, passive between.
//   - adoption = 100 × share of the catalogue used within
//     [adoption.window_days] = 30 days; the catalogue is the contract's plan
//     features, else [adoption.feature_catalogue] (default empty: neutral).
//
// # health_score_change
//
// For [health_change.baseline_window] = 24h after a customer's first event
// the score silently becomes the baseline. After that, an event that moves
// the score [health_change.min_delta] = 5 points or more from the last
// reported score, or into another band, emits previous_score (the last
// reported) and new_score. change_reason names the component whose weighted
// change since the last report is largest (ties: usage, engagement,
// support, payment, sentiment, adoption), with its direction:
//
//	usage       usage_decline | usage_growth
//	engagement  engagement_drop | engagement_gain
//	support     support_escalation (a ticket is escalated) |
//	            support_tickets_opened (none escalated) | support_resolved
//	payment     payment_issue | payment_recovered
//	sentiment   nps_detractor (latest answer a detractor) | nps_decline |
//	            nps_promoter (latest answer a promoter) | nps_improved
//	adoption    adoption_drop | adoption_gain
//
// # churn_risk_detected
//
// Indicators, in risk_indicators order, with [churn.indicator_weights]:
//
//	usage_decline_30_percent  2  trend ≤ [usage.decline_ratio] 0.7
//	support_escalation        2  an escalated, unresolved ticket
//	payment_issue             2  a failed or overdue invoice not paid since
//	nps_detractor             1  latest NPS ≤ 6
//	champion_left             2  the latest sponsor report says so
//	low_engagement            1  no login for [churn.low_engagement_days]
//	                             14 days (once seen that long)
//	renewal_at_risk           2  renewal date within
//	                             [churn.renewal_window_days] 90 days and
//	                             score < [churn.renewal_risk_score] 50
//
// risk_level from the summed weights [churn.risk_thresholds]: low ≥ 1,
// medium ≥ 2, high ≥ 5, critical ≥ 8. An event is emitted when the level
// rises above the level after the previous input, unless an event of that
// level was emitted for the customer less than [churn.repeat_after] = 24h
// (event time) before. recommended_actions [churn.actions]:
//
//	low       monitor_health
//	medium    schedule_check_in, review_usage
//	high      immediate_outreach, executive_escalation, success_plan_review
//	critical  immediate_outreach, executive_escalation, success_plan_review,
//	          retention_offer
//
// # expansion_ready
//
// Only with score ≥ [expansion.min_score] 75, a contract and no churn
// indicator. Opportunities, each at most once per customer per
// [expansion.repeat_after] = 720h (30 days):
//
//   - upsell: utilisation ≥ [expansion.upsell_utilisation] 0.9 on
//     [expansion.upsell_days] = 7 consecutive days of usage reports ending
//     today or yesterday. value_estimate = extra seats × ARR / seats (whole
//     currency units, rounded), extra seats = max(1, ceil(seats ×
//     [expansion.upsell_seat_share] 0.2)).
//   - cross_sell: ≥ [expansion.cross_sell_feature_share] 0.8 of the plan's
//     features in use; value_estimate = [expansion.cross_sell_arr_share]
//     0.2 × ARR.
//
// success_factors, in order: high_adoption (adoption ≥
// [expansion.high_adoption] 80), strong_health_score (score ≥
// [expansion.strong_score] 85), executive_sponsorship (an executive sponsor
// on record or an executive login within the engagement window),
// promoter_nps (latest NPS ≥ 9), usage_growth (trend ≥ [usage.growth_ratio]
// 1.1). probability = min([expansion.probability_max] 0.95,
// [expansion.probability_base] 0.4 + [expansion.probability_per_factor] 0.1
// × factors), rounded to 2 decimals.
//
// # Explanation
//
// Every derived event carries an event.Explanation: a one-sentence summary;
// score, band and the six component scores now and as last reported
// (previous_*); inputs — each component that moved since the last report,
// largest weighted effect first, with delta (component points),
// score_delta (weighted) and because (the measurements: utilisation and its
// days, the trailing vs previous 30-day active users, login days, ticket
// and invoice counts and ids, the NPS answer, features in use). Churn adds
// risk_points and the indicators with weight and evidence; expansion adds
// the success factors with evidence. Numbers are rounded to 2 decimals.
//
// # State
//
// State holds the daily usage buckets (60 days), login days (14), feature
// last-use days (30), tickets, invoices, the latest NPS, contract and
// sponsor, the dedupe ids, the score, band and components now and as last
// reported, the risk level and active indicators, the last emission time
// per risk level and opportunity type, and the last [input.recent_derived]
// = 5 derived events' key fields for a read model. Emptied collections are
// nil. StateCodec encodes it with schemas/customer_state.v1.avsc (maps as
// arrays sorted by key: equal States encode to equal bytes); a customer is
// typically 0.7–1.5 KB.
package model
