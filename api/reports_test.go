package api_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tally-loyalty/tally/api"
	"github.com/tally-loyalty/tally/ledger"
)

// get sends GET path with the admin token and Accept, returning the answer.
func (f *fixture) get(path, accept string) (*http.Response, []byte) {
	f.t.Helper()
	req, err := http.NewRequest("GET", f.srv.URL+path, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return resp, data
}

// sameJSON fails unless got and want decode to the same value.
func sameJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("answer is not JSON: %q", got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func readCSV(t *testing.T, data []byte) [][]string {
	t.Helper()
	r := csv.NewReader(strings.NewReader(string(data)))
	r.FieldsPerRecord = -1
	records, err := r.ReadAll()
	if err != nil {
		t.Fatalf("answer is not CSV: %v\n%s", err, data)
	}
	return records
}

// liabilityFixture serves a ledger in Europe/Berlin with:
//
//	2026-01-31T23:30Z telegram:1 +100, never expires (February in Berlin)
//	2026-03-10T12:00Z telegram:1 +200, expires 2027-01-15T00:00Z
//	2026-03-10T12:00Z telegram:2 +30, expires an hour later (overdue, no sweep)
//	2026-03-20T12:00Z telegram:1 −50
//	as of 2026-04-01T09:00Z
func liabilityFixture(t *testing.T) *fixture {
	t.Helper()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, api.WithTimezone(berlin))
	step := func(at, method, path, body string) {
		t.Helper()
		now, _ := time.Parse(time.RFC3339, at)
		f.clock.Set(now)
		if code, resp := f.do(method, path, body); code != http.StatusCreated {
			t.Fatalf("%s %s: %d %v", method, path, code, resp)
		}
	}
	step("2026-01-31T23:30:00Z", "POST", "/v1/awards", `{"member":"telegram:1","points":100,"idempotency_key":"a"}`)
	step("2026-03-10T12:00:00Z", "POST", "/v1/awards", `{"member":"telegram:1","points":200,"idempotency_key":"b","expires_at":"2027-01-15T00:00:00Z"}`)
	step("2026-03-10T12:00:00Z", "POST", "/v1/awards", `{"member":"telegram:2","points":30,"idempotency_key":"c","expires_at":"2026-03-10T13:00:00Z"}`)
	step("2026-03-20T12:00:00Z", "POST", "/v1/deductions", `{"member":"telegram:1","points":50,"idempotency_key":"d"}`)
	f.clock.Set(time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC))
	return f
}

func TestLiabilityReport_JSON(t *testing.T) {
	t.Parallel()
	f := liabilityFixture(t)
	resp, body := f.get("/v1/reports/liability", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("%d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	sameJSON(t, body, `{"timezone": "Europe/Berlin", "as_of": "2026-04-01T09:00:00Z",
		"outstanding": {"total": 280, "pending": 0, "overdue": 30,
			"by_expiry": [{"month": "2027-01", "points": 150}, {"month": null, "points": 100}]},
		"activity": [
			{"month": "2026-02", "issued": 100, "spent": 0, "expired": 0, "adjustments": 0, "partners": 0},
			{"month": "2026-03", "issued": 230, "spent": 50, "expired": 0, "adjustments": 0, "partners": 0}]}`)

	_, body = f.get("/v1/reports/liability?from=2026-03&to=2026-12", "application/json")
	sameJSON(t, body, `{"timezone": "Europe/Berlin", "as_of": "2026-04-01T09:00:00Z",
		"outstanding": {"total": 280, "pending": 0, "overdue": 30,
			"by_expiry": [{"month": "2027-01", "points": 150}, {"month": null, "points": 100}]},
		"activity": [{"month": "2026-03", "issued": 230, "spent": 50, "expired": 0, "adjustments": 0, "partners": 0}]}`)

	_, body = f.get("/v1/reports/liability?to=2026-01", "")
	if !strings.Contains(string(body), `"activity":[]`) {
		t.Fatalf("no activity in range: %s", body)
	}
	f.mustCheck()
}

func TestLiabilityReport_DefaultsToUTC(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.clock.Set(time.Date(2026, 1, 31, 23, 30, 0, 0, time.UTC))
	f.do("POST", "/v1/awards", `{"member":"telegram:1","points":100,"idempotency_key":"a"}`)
	_, body := f.do("GET", "/v1/reports/liability", "")
	if body["timezone"] != "UTC" || body["activity"].([]any)[0].(map[string]any)["month"] != "2026-01" {
		t.Fatalf("in UTC: %v", body)
	}
}

func TestLiabilityReport_CSV(t *testing.T) {
	t.Parallel()
	f := liabilityFixture(t)
	resp, body := f.get("/v1/reports/liability", "text/csv")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Fatalf("%d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename="tally-liability-2026-04-01.csv"` {
		t.Errorf("Content-Disposition %q", cd)
	}
	want := [][]string{
		{"as_of", "timezone"},
		{"2026-04-01T09:00:00Z", "Europe/Berlin"},
		{"expiry", "points"},
		{"overdue", "30"},
		{"2027-01", "150"},
		{"never", "100"},
		{"total", "280"},
		{"pending", "0"},
		{"month", "issued", "spent", "expired", "adjustments", "partners"},
		{"2026-02", "100", "0", "0", "0", "0"},
		{"2026-03", "230", "50", "0", "0", "0"},
	}
	if got := readCSV(t, body); !reflect.DeepEqual(got, want) {
		t.Fatalf("CSV:\n got %q\nwant %q", got, want)
	}
	// Sections are separated by an empty line (which CSV readers skip).
	if !strings.Contains(string(body), "Europe/Berlin\r\n\r\nexpiry,points\r\n") || !strings.Contains(string(body), "pending,0\r\n\r\nmonth,") {
		t.Fatalf("sections not separated: %q", body)
	}

	_, body = f.get("/v1/reports/liability?from=2026-03&to=2026-03", "text/csv")
	got := readCSV(t, body)
	if last := got[len(got)-2:]; !reflect.DeepEqual(last, [][]string{want[8], want[10]}) {
		t.Fatalf("March only: %q", got)
	}
}

func TestLiabilityReport_Negotiation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for accept, wantCSV := range map[string]bool{
		"":                                     false,
		"*/*":                                  false,
		"application/json":                     false,
		"text/csv":                             true,
		"TEXT/CSV; charset=utf-8":              true,
		"text/csv;q=0.5, application/json":     false,
		"application/json;q=0.1, text/csv":     true,
		"text/csv, application/json":           false,
		"text/html, text/csv;q=0.9, */*;q=0.8": true,
		"text/csv;q=0":                         false,
	} {
		resp, _ := f.get("/v1/reports/liability", accept)
		if isCSV := strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv"); isCSV != wantCSV || resp.StatusCode != http.StatusOK {
			t.Errorf("Accept %q: %d %s", accept, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if resp.Header.Get("Vary") != "Accept" {
			t.Errorf("Accept %q: Vary %q", accept, resp.Header.Get("Vary"))
		}
	}
}

func TestLiabilityReport_InvalidRangeAndAuth(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for query, msg := range map[string]string{
		"from=2026-13":            "from must be a month written YYYY-MM",
		"from=2026-1":             "from must be a month written YYYY-MM",
		"to=2026-01-31":           "to must be a month written YYYY-MM",
		"to=last":                 "to must be a month written YYYY-MM",
		"from=2026-05&to=2026-04": "from (2026-05) must not be after to (2026-04)",
	} {
		for _, accept := range []string{"", "text/csv"} {
			resp, body := f.get("/v1/reports/liability?"+query, accept)
			var e map[string]any
			json.Unmarshal(body, &e)
			if resp.StatusCode != http.StatusBadRequest || errCode(e) != "invalid" || !strings.Contains(string(body), msg) {
				t.Errorf("?%s (Accept %q): %d %s", query, accept, resp.StatusCode, body)
			}
		}
	}
	for _, auth := range []string{"", "Bearer wrong-token-wrong-token"} {
		if code, body := f.doWith("GET", "/v1/reports/liability", "", auth); code != http.StatusUnauthorized || errCode(body) != "unauthorized" {
			t.Errorf("auth %q: %d %v", auth, code, body)
		}
	}
	if code, body := f.do("POST", "/v1/reports/liability", ""); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d %v", code, body)
	}
}

// awardMax gives members from..to (telegram ids) ledger.MaxPoints each.
func awardMax(t *testing.T, l *ledger.Service, from, to int) {
	t.Helper()
	var batch []ledger.Award
	for i := from; i <= to; i++ {
		batch = append(batch, ledger.Award{Member: ledger.MemberRef{Platform: "telegram", UserID: strconv.Itoa(i)},
			Points: ledger.MaxPoints, Key: "max-" + strconv.Itoa(i)})
		if len(batch) == ledger.MaxBatch || i == to {
			if _, err := l.AwardBatch(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

// TestLiabilityReport_TotalsPast2To53: JSON numbers are exact up to 2^53−1;
// a total beyond it is a string of its digits, and beyond int64 the report
// is refused rather than wrong.
func TestLiabilityReport_TotalsPast2To53(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	awardMax(t, f.ledger, 1, 1)
	_, body := f.get("/v1/reports/liability", "")
	sameJSON(t, body, `{"timezone": "UTC", "as_of": "2026-05-01T10:00:00Z",
		"outstanding": {"total": 9007199254740991, "pending": 0, "overdue": 0, "by_expiry": [{"month": null, "points": 9007199254740991}]},
		"activity": [{"month": "2026-05", "issued": 9007199254740991, "spent": 0, "expired": 0, "adjustments": 0, "partners": 0}]}`)

	awardMax(t, f.ledger, 2, 2)
	_, body = f.get("/v1/reports/liability", "")
	sameJSON(t, body, `{"timezone": "UTC", "as_of": "2026-05-01T10:00:00Z",
		"outstanding": {"total": "18014398509481982", "pending": 0, "overdue": 0, "by_expiry": [{"month": null, "points": "18014398509481982"}]},
		"activity": [{"month": "2026-05", "issued": "18014398509481982", "spent": 0, "expired": 0, "adjustments": 0, "partners": 0}]}`)
	_, body = f.get("/v1/reports/liability", "text/csv")
	if got := readCSV(t, body); got[len(got)-1][1] != "18014398509481982" || got[5][0] != "total" || got[5][1] != "18014398509481982" {
		t.Fatalf("CSV: %q", got)
	}

	// 1025 × (2^53−1) > 2^63−1.
	awardMax(t, f.ledger, 3, 1025)
	code, resp := f.do("GET", "/v1/reports/liability", "")
	if code != http.StatusInternalServerError || errCode(resp) != "internal" {
		t.Fatalf("beyond int64: %d %v", code, resp)
	}
	f.mustCheck()
}
