package backend

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func encodingJSON(t testing.TB, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func getDataFixture(payload, name string, took float64) getDataResponse {
	return getDataResponse{
		BackendID: "backend-0",
		Follower:  followerJSON{Name: name, Addr: "127.0.0.1:5432"},
		Row:       rowJSON{ID: 4711, Payload: payload, CreatedAt: time.Date(2026, 11, 25, 21, 48, 58, 498488000, time.UTC)},
		Attempts:  1,
		TookMS:    took,
	}
}

func TestAppendGetDataMatchesEncodingJSON(t *testing.T) {
	payloads := []string{
		"", "seed-1", `quote " and backslash \ and slash /`, "tab\tnewline\nreturn\r",
		"\b\f\x00\x01\x1f\x7f", "<script>&amp;</script>", "héllo wörld ✓ 𝄞",
		"line\u2028sep\u2029para", "bad utf8 \xff\xfe end", "\xe2\x82", "trailing \xc3",
	}
	tooks := []float64{0, 0.001, 1.5, 2.087, 1999.999, 1e-7, 3e21, 123456.789}
	for _, p := range payloads {
		for _, took := range tooks {
			r := getDataFixture(p, "follower-1", took)
			if got, want := appendGetData(nil, &r), encodingJSON(t, r); !bytes.Equal(got, want) {
				t.Errorf("payload %q took %v:\n got %s\nwant %s", p, took, got, want)
			}
		}
	}
	r := getDataFixture("x", "follower-0", 1)
	r.Row.CreatedAt = time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", 3600))
	if got, want := appendGetData(nil, &r), encodingJSON(t, r); !bytes.Equal(got, want) {
		t.Errorf("time with zone:\n got %s\nwant %s", got, want)
	}
}

func FuzzAppendGetData(f *testing.F) {
	f.Add("seed-1", "follower-0", 1.25)
	f.Add("\xff<\u2028>\"", "", 0.0)
	f.Fuzz(func(t *testing.T, payload, name string, took float64) {
		if took != took || took > 1e300 || took < -1e300 { // NaN and Inf are not JSON
			t.Skip()
		}
		r := getDataFixture(payload, name, took)
		if got, want := appendGetData(nil, &r), encodingJSON(t, r); !bytes.Equal(got, want) {
			t.Errorf("got %s\nwant %s", got, want)
		}
	})
}

func BenchmarkGetDataEncoding(b *testing.B) {
	r := getDataFixture("seed-4711", "follower-1", 2.087)
	b.Run("appendGetData", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for b.Loop() {
			buf = appendGetData(buf[:0], &r)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			_ = json.NewEncoder(&buf).Encode(&r)
		}
	})
}
