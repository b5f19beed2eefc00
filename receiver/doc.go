// Package receiver is the local webhook receiver behind `vitals listen`
// (like `stripe listen`): an http.Handler that verifies Standard Webhooks
// signatures with one secret, prints every verified event (type, id and
// pretty JSON) and reports a delivery it has already seen by webhook-id.
//
// It is a development tool. It must never accept, print or report an event
// whose signature did not verify: those get 401 problem+json and nothing
// else.
package receiver
