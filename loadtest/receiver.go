package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// webhookFunc is told about each webhook the receiver got: its event type,
// customer id and timestamp, and when it arrived.
type webhookFunc func(event, customerID string, ts time.Time, at time.Time)

// receiver is the webhook endpoint of the whole run, and the target of the
// bare-POST baseline: a default net/http server on loopback that drains the
// body and answers 200. Only while a phase watches (watch) does it decode
// bodies, so the baseline and the dispatcher stage pay the same per request.
type receiver struct {
	srv      *http.Server
	ln       net.Listener
	url      string
	count    atomic.Int64 // requests received
	unsigned atomic.Int64 // requests without a webhook-signature header
	watcher  atomic.Pointer[webhookFunc]
	bufs     sync.Pool
	errc     chan error
}

// startReceiver listens on a free loopback port and serves until close.
func startReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	r := &receiver{ln: ln, url: "http://" + ln.Addr().String() + "/webhooks", errc: make(chan error, 1)}
	r.bufs.New = func() any { return new(bytes.Buffer) }
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() { r.errc <- r.srv.Serve(ln) }()
	return r, nil
}

// ServeHTTP counts the request and, when a phase watches, decodes it.
func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	buf := r.bufs.Get().(*bytes.Buffer)
	defer r.bufs.Put(buf)
	buf.Reset()
	_, _ = buf.ReadFrom(req.Body)
	at := time.Now()
	r.count.Add(1)
	if req.Header.Get("webhook-signature") == "" {
		r.unsigned.Add(1)
	}
	if fn := r.watcher.Load(); fn != nil {
		var body struct {
			Event      string `json:"event"`
			CustomerID string `json:"customer_id"`
			Timestamp  string `json:"timestamp"`
		}
		if json.Unmarshal(buf.Bytes(), &body) == nil {
			ts, _ := time.Parse(time.RFC3339, body.Timestamp)
			(*fn)(body.Event, body.CustomerID, ts, at)
		}
	}
	w.WriteHeader(http.StatusOK)
}

// watch makes the receiver decode every webhook and call fn; nil stops it.
func (r *receiver) watch(fn webhookFunc) {
	if fn == nil {
		r.watcher.Store(nil)
		return
	}
	r.watcher.Store(&fn)
}

// waitCount waits until the receiver got at least n requests in all.
func (r *receiver) waitCount(ctx context.Context, n int64, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for r.count.Load() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("receiver got %d of %d webhooks: %w", r.count.Load(), n, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// close stops the server.
func (r *receiver) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := r.srv.Shutdown(ctx)
	if serr := <-r.errc; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
