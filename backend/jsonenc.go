package backend

import (
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// The GET /data answer is the hot path: it is written by hand into a pooled
// buffer instead of through encoding/json's reflection, and byte for byte
// the same as encoding/json would write it (a test holds them equal).

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// appendGetData appends r as JSON followed by a newline, as
// json.NewEncoder(w).Encode(r) writes it.
func appendGetData(b []byte, r *getDataResponse) []byte {
	b = append(b, `{"backend_id":`...)
	b = appendJSONString(b, r.BackendID)
	b = append(b, `,"follower":{"name":`...)
	b = appendJSONString(b, r.Follower.Name)
	b = append(b, `,"addr":`...)
	b = appendJSONString(b, r.Follower.Addr)
	b = append(b, `},"row":{"id":`...)
	b = strconv.AppendInt(b, r.Row.ID, 10)
	b = append(b, `,"payload":`...)
	b = appendJSONString(b, r.Row.Payload)
	b = append(b, `,"created_at":"`...)
	b = r.Row.CreatedAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `"},"attempts":`...)
	b = strconv.AppendInt(b, int64(r.Attempts), 10)
	b = append(b, `,"took_ms":`...)
	b = appendJSONFloat(b, r.TookMS)
	return append(b, "}\n"...)
}

// appendJSONFloat formats f as encoding/json does (finite values only:
// took_ms always is).
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// Clean up e-09 to e-9, as encoding/json does.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string the way encoding/json does
// by default: quotes, backslashes and control characters escaped, <, > and
// & escaped for HTML safety, U+2028 and U+2029 escaped, invalid UTF-8
// replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
