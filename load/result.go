package load

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"syscall"
	"time"
)

// ErrorKind classifies a failed request; it is empty for a request that
// succeeded. Status failures are "http_<status>", e.g. "http_503".
type ErrorKind string

// Error kinds that are not an HTTP status.
const (
	KindTimeout     ErrorKind = "timeout"      // per-request timeout hit (connect, headers or body)
	KindConnRefused ErrorKind = "conn_refused" // nothing listening
	KindConnReset   ErrorKind = "conn_reset"   // peer reset or closed the connection mid-request
	KindConnError   ErrorKind = "conn_error"   // any other transport failure
	KindBadBody     ErrorKind = "bad_body"     // expected status, but the JSON is invalid or lacks backend_id
)

// StatusKind is the kind for an unexpected HTTP status, e.g. "http_503".
func StatusKind(status int) ErrorKind {
	return ErrorKind("http_" + strconv.Itoa(status))
}

// Result is the outcome of one request.
type Result struct {
	Seq          int64         `json:"seq"`   // 1-based dispatch order
	Start        time.Time     `json:"start"` // when the request was sent
	Latency      time.Duration `json:"latency_ns"`
	Method       string        `json:"method"`
	Status       int           `json:"status"` // 0 when no response arrived
	Kind         ErrorKind     `json:"kind,omitempty"`
	Backend      string        `json:"backend,omitempty"`
	Follower     string        `json:"follower,omitempty"`
	FollowerAddr string        `json:"follower_addr,omitempty"`
	Direct       bool          `json:"direct,omitempty"` // the read went around HAProxy, straight to the follower
	ID           int64         `json:"id,omitempty"`     // row read (GET) or row created (POST)
	Err          string        `json:"err,omitempty"`
}

// OK reports whether the request succeeded: 200 for GET, 201 for POST, and a
// body naming the backend.
func (r Result) OK() bool { return r.Kind == "" }

// End is when the response (or the failure) was complete.
func (r Result) End() time.Time { return r.Start.Add(r.Latency) }

// classify maps a transport error to its kind. A closed keep-alive
// connection surfaces as io.EOF, which is the peer going away, so it counts
// as a reset.
func classify(err error) ErrorKind {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return KindTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return KindConnRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return KindConnReset
	}
	return KindConnError
}
