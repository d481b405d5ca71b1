package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/ledger"
)

// maxBody is the largest request body the admin API reads.
const maxBody = 1 << 20

// awardRequest is the body of POST /v1/awards and one item of a batch.
// Points stay raw so that only plain JSON integers are accepted.
type awardRequest struct {
	Member         *string         `json:"member"`
	Points         json.RawMessage `json:"points"`
	Reason         string          `json:"reason"`
	IdempotencyKey *string         `json:"idempotency_key"`
	ExpiresAt      *string         `json:"expires_at"`
}

type batchRequest struct {
	Awards []json.RawMessage `json:"awards"`
}

// pointsPattern admits a plain positive JSON integer of at most 16 digits:
// not 0, -5, 1.5, 1e3, "10" or 20-digit numbers. The range check follows.
var pointsPattern = regexp.MustCompile(`^[1-9][0-9]{0,15}$`)

func parsePoints(raw json.RawMessage) (int64, error) {
	if len(raw) == 0 {
		return 0, tally.Errorf(tally.EINVALID, "points is required")
	}
	if !pointsPattern.Match(raw) {
		return 0, tally.Errorf(tally.EINVALID, "points must be a JSON integer from 1 to %d, without quotes, sign, fraction or exponent", int64(ledger.MaxPoints))
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n > ledger.MaxPoints {
		return 0, tally.Errorf(tally.EINVALID, "points must be a JSON integer from 1 to %d", int64(ledger.MaxPoints))
	}
	return n, nil
}

// Field names each request object may carry.
var (
	awardFields = []string{"member", "points", "reason", "idempotency_key", "expires_at"}
	batchFields = []string{"awards"}
)

// decodeStrict decodes one JSON object into v: unknown fields, fields whose
// name differs in case, repeated fields, trailing data and bodies over maxBody
// are invalid. (encoding/json alone matches names case-insensitively and lets
// the last of two equal fields win, so {"points":-5,"points":5} would pass.)
func decodeStrict(data []byte, v any, fields []string) error {
	if len(data) > maxBody {
		return tally.Errorf(tally.EINVALID, "request body exceeds %d bytes", maxBody)
	}
	if err := checkFields(data, fields); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return tally.Errorf(tally.EINVALID, "request body must hold one JSON object and nothing after it")
	}
	return nil
}

// jsonError turns a decoding failure into a message naming what was wrong.
func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return tally.Errorf(tally.EINVALID, "request body is empty; send a JSON object")
	case errors.As(err, &syn):
		return tally.Errorf(tally.EINVALID, "request body is not valid JSON (at byte %d)", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return tally.Errorf(tally.EINVALID, "request body must be a JSON object")
		}
		return tally.Errorf(tally.EINVALID, "%s must be a JSON %s", typ.Field, jsonType(typ.Type.Kind().String()))
	}
	msg := err.Error()
	if len(msg) > 120 {
		msg = msg[:120]
	}
	return tally.Errorf(tally.EINVALID, "request body: %s", msg)
}

func jsonType(kind string) string {
	switch kind {
	case "string", "ptr":
		return "string"
	case "slice":
		return "array"
	case "struct", "map":
		return "object"
	}
	return kind
}

// toAward validates a decoded award request.
func (r awardRequest) toAward() (ledger.Award, error) {
	if r.Member == nil || *r.Member == "" {
		return ledger.Award{}, tally.Errorf(tally.EINVALID, "member is required")
	}
	ref, err := ledger.ParseMemberRef(*r.Member)
	if err != nil {
		return ledger.Award{}, err
	}
	points, err := parsePoints(r.Points)
	if err != nil {
		return ledger.Award{}, err
	}
	if r.IdempotencyKey == nil || *r.IdempotencyKey == "" {
		return ledger.Award{}, tally.Errorf(tally.EINVALID, "idempotency_key is required")
	}
	a := ledger.Award{Member: ref, Points: points, Reason: r.Reason, Key: *r.IdempotencyKey}
	if r.ExpiresAt != nil {
		t, err := time.Parse(time.RFC3339Nano, *r.ExpiresAt)
		if err != nil {
			return ledger.Award{}, tally.Errorf(tally.EINVALID, "expires_at must be an RFC 3339 time such as 2027-01-31T23:59:59Z")
		}
		a.ExpiresAt = &t
	}
	return a, nil
}

// decodeAward parses the body of POST /v1/awards.
func decodeAward(data []byte) (ledger.Award, error) {
	var r awardRequest
	if err := decodeStrict(data, &r, awardFields); err != nil {
		return ledger.Award{}, err
	}
	return r.toAward()
}

// decodeDeduction parses the body of POST /v1/deductions.
func decodeDeduction(data []byte) (ledger.Deduction, error) {
	var r awardRequest
	if err := decodeStrict(data, &r, awardFields); err != nil {
		return ledger.Deduction{}, err
	}
	if r.ExpiresAt != nil {
		return ledger.Deduction{}, tally.Errorf(tally.EINVALID, "expires_at applies to awards only")
	}
	a, err := r.toAward()
	if err != nil {
		return ledger.Deduction{}, err
	}
	return ledger.Deduction{Member: a.Member, Points: a.Points, Reason: a.Reason, Key: a.Key}, nil
}

// decodeBatch parses the body of POST /v1/awards/batch; an error names the item.
func decodeBatch(data []byte) ([]ledger.Award, error) {
	var b batchRequest
	if err := decodeStrict(data, &b, batchFields); err != nil {
		return nil, err
	}
	if len(b.Awards) == 0 || len(b.Awards) > ledger.MaxBatch {
		return nil, tally.Errorf(tally.EINVALID, "awards must hold 1 to %d items", ledger.MaxBatch)
	}
	out := make([]ledger.Award, len(b.Awards))
	for i, raw := range b.Awards {
		var r awardRequest
		err := decodeStrict(raw, &r, awardFields)
		if err == nil {
			out[i], err = r.toAward()
		}
		if err != nil {
			return nil, tally.Errorf(tally.EINVALID, "awards[%d]: %s", i, tally.ErrorMessage(err))
		}
	}
	return out, nil
}

// checkFields walks the top-level object of data and refuses a field that is
// not one of fields, spelled exactly, or that appears twice. Malformed JSON is
// left to the decoder, which describes it better.
func checkFields(data []byte, fields []string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		name, _ := tok.(string)
		known := false
		for _, f := range fields {
			known = known || f == name
		}
		if !known {
			return tally.Errorf(tally.EINVALID, "unknown field %q (fields: %s)", clipField(name), strings.Join(fields, ", "))
		}
		if seen[name] {
			return tally.Errorf(tally.EINVALID, "field %q appears twice", name)
		}
		seen[name] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil
		}
	}
	return nil
}

func clipField(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
