package api

import (
	"encoding/json"
	"testing"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/ledger"
)

// FuzzDecodeAward feeds arbitrary bodies to the award decoder: it must never
// panic, must refuse with invalid (never another code), and whatever it
// accepts must be a well-formed award that encodes and decodes to itself.
func FuzzDecodeAward(f *testing.F) {
	for _, seed := range []string{
		`{"member":"telegram:42","points":150,"reason":"welcome","idempotency_key":"k"}`,
		`{"member":"17","points":9007199254740991,"idempotency_key":"k","expires_at":"2030-01-01T00:00:00Z"}`,
		`{"member":"discord:80351110224678912","points":1,"idempotency_key":"ключ"}`,
		`{"member":"telegram:42","points":1e3,"idempotency_key":"k"}`,
		`{"member":"telegram:42","points":"10","idempotency_key":"k"}`,
		`{"member":"telegram:42","points":-5,"idempotency_key":"k"}`,
		`{"member":"telegram:42","points":12345678901234567890,"idempotency_key":"k"}`,
		`{"points":5}`, `[]`, `null`, ``, `{"member":1}`, `{} {}`, "{\"member\":\"\xff\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := decodeAward(data)
		if err != nil {
			if tally.ErrorCode(err) != tally.EINVALID {
				t.Fatalf("decodeAward(%q): code %q, want invalid", data, tally.ErrorCode(err))
			}
			return
		}
		if a.Points < 1 || a.Points > ledger.MaxPoints || a.Key == "" {
			t.Fatalf("decodeAward(%q) accepted %+v", data, a)
		}
		member := a.Member.String()
		body := map[string]any{"member": member, "points": a.Points, "reason": a.Reason, "idempotency_key": a.Key}
		if a.ExpiresAt != nil {
			body["expires_at"] = a.ExpiresAt.Format("2006-01-02T15:04:05.999999999Z07:00")
		}
		again, _ := json.Marshal(body)
		b, err := decodeAward(again)
		if err != nil || b.Member != a.Member || b.Points != a.Points || b.Key != a.Key || b.Reason != a.Reason {
			t.Fatalf("re-encoded %q decoded to %+v, %v; want %+v", again, b, err, a)
		}
	})
}
