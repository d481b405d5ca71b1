package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tally-loyalty/tally/api"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/metrics"
	"github.com/tally-loyalty/tally/tallytest"
)

const token = "test-admin-token-0123456789"

type fixture struct {
	t      *testing.T
	pool   interface{ Close() }
	srv    *httptest.Server
	ledger *ledger.Service
	clock  *tallytest.Clock
}

func newFixture(t *testing.T, opts ...api.Option) *fixture {
	t.Helper()
	pool := tallytest.DB(t)
	clock := tallytest.NewClock(time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC))
	m := metrics.New()
	l := ledger.New(pool, clock, ledger.WithObserver(m.ObserveLedger))
	opts = append([]api.Option{api.WithAdminToken(token), api.WithMetrics(m.Handler(), m.Middleware),
		api.WithReadiness(api.Check{Name: "postgres", Ping: pool.Ping})}, opts...)
	srv := httptest.NewServer(api.New(l, opts...).Handler())
	t.Cleanup(srv.Close)
	return &fixture{t: t, pool: pool, srv: srv, ledger: l, clock: clock}
}

// do sends a request with the admin token and decodes a JSON answer.
func (f *fixture) do(method, path, body string) (int, map[string]any) {
	f.t.Helper()
	return f.doWith(method, path, body, "Bearer "+token)
}

func (f *fixture) doWith(method, path, body, auth string) (int, map[string]any) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(data, &out); err != nil {
		f.t.Fatalf("%s %s: answer is not JSON: %q", method, path, data)
	}
	return resp.StatusCode, out
}

func errCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (f *fixture) balance(member string) float64 {
	f.t.Helper()
	code, body := f.do("GET", "/v1/members/"+member, "")
	if code != 200 {
		f.t.Fatalf("GET member %s: %d %v", member, code, body)
	}
	return body["balance"].(map[string]any)["available"].(float64)
}

func (f *fixture) mustCheck() {
	f.t.Helper()
	r, err := f.ledger.Check(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	for _, v := range r.Violations {
		f.t.Errorf("invariant %d: %s", v.Invariant, v.Detail)
	}
}

func TestAdminAPI_Auth(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, auth := range []string{"", "Bearer wrong-token-wrong-token", "Basic " + token, token, "Bearer"} {
		code, body := f.doWith("GET", "/v1/members/1", "", auth)
		if code != 401 || errCode(body) != "unauthorized" {
			t.Errorf("auth %q: %d %v", auth, code, body)
		}
	}
	code, body := f.doWith("POST", "/v1/awards", `{"member":"telegram:1","points":5,"idempotency_key":"k"}`, "Bearer nope")
	if code != 401 || errCode(body) != "unauthorized" {
		t.Fatalf("unauthorized award: %d %v", code, body)
	}
	if code, _ := f.do("GET", "/v1/members/telegram:1", ""); code != 404 {
		t.Fatalf("an unauthorized award created a member: %d", code)
	}
}

func TestAdminAPI_DisabledWithoutToken(t *testing.T) {
	t.Parallel()
	pool := tallytest.DB(t)
	srv := httptest.NewServer(api.New(ledger.New(pool, tallytest.NewClock(time.Now()))).Handler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/v1/awards", "application/json", strings.NewReader(`{"member":"telegram:1","points":5,"idempotency_key":"k"}`))
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 404 || errCode(body) != "not_found" || !strings.Contains(fmt.Sprint(body), "TALLY_ADMIN_TOKEN") {
		t.Fatalf("disabled admin API: %d %v", resp.StatusCode, body)
	}
	resp, err = http.Get(srv.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz with admin API off: %v %v", resp, err)
	}
}

func TestAdminAPI_AwardReplayConflict(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	award := `{"member":"telegram:42","points":150,"reason":"welcome","idempotency_key":"welcome-42"}`
	code, first := f.do("POST", "/v1/awards", award)
	if code != 201 {
		t.Fatalf("award: %d %v", code, first)
	}
	m := first["member"].(map[string]any)
	if first["points"].(float64) != 150 || first["balance"].(float64) != 150 || first["transaction_id"].(float64) < 1 ||
		fmt.Sprint(m["identities"]) != "[telegram:42]" || m["id"].(float64) < 1 {
		t.Fatalf("award body: %v", first)
	}
	f.clock.Advance(time.Minute)
	code, again := f.do("POST", "/v1/awards", award)
	if code != 200 || fmt.Sprint(again) != fmt.Sprint(first) {
		t.Fatalf("replay: %d %v, want 200 %v", code, again, first)
	}
	code, body := f.do("POST", "/v1/awards", `{"member":"telegram:42","points":151,"reason":"welcome","idempotency_key":"welcome-42"}`)
	if code != 409 || errCode(body) != "idempotency_conflict" {
		t.Fatalf("conflict: %d %v", code, body)
	}
	if b := f.balance("telegram:42"); b != 150 {
		t.Fatalf("balance %v, want 150", b)
	}
	f.mustCheck()
}

func TestAdminAPI_BadInputIsInvalidAndChangesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if code, body := f.do("POST", "/v1/awards", `{"member":"telegram:1","points":10,"idempotency_key":"seed"}`); code != 201 {
		t.Fatal(code, body)
	}
	bad := map[string]string{
		"zero":            `{"member":"telegram:1","points":0,"idempotency_key":"x"}`,
		"negative":        `{"member":"telegram:1","points":-5,"idempotency_key":"x"}`,
		"fraction":        `{"member":"telegram:1","points":1.5,"idempotency_key":"x"}`,
		"string":          `{"member":"telegram:1","points":"10","idempotency_key":"x"}`,
		"exponent":        `{"member":"telegram:1","points":1e3,"idempotency_key":"x"}`,
		"20 digits":       `{"member":"telegram:1","points":12345678901234567890,"idempotency_key":"x"}`,
		"2^53":            `{"member":"telegram:1","points":9007199254740992,"idempotency_key":"x"}`,
		"null points":     `{"member":"telegram:1","points":null,"idempotency_key":"x"}`,
		"no points":       `{"member":"telegram:1","idempotency_key":"x"}`,
		"bool points":     `{"member":"telegram:1","points":true,"idempotency_key":"x"}`,
		"leading zero":    `{"member":"telegram:1","points":010,"idempotency_key":"x"}`,
		"no key":          `{"member":"telegram:1","points":5}`,
		"empty key":       `{"member":"telegram:1","points":5,"idempotency_key":""}`,
		"numeric key":     `{"member":"telegram:1","points":5,"idempotency_key":5}`,
		"no member":       `{"points":5,"idempotency_key":"x"}`,
		"bad member":      `{"member":"telegram:abc","points":5,"idempotency_key":"x"}`,
		"unknown field":   `{"member":"telegram:1","points":5,"idempotency_key":"x","bonus":1}`,
		"repeated field":  `{"member":"telegram:1","points":-5,"points":5,"idempotency_key":"x"}`,
		"field case":      `{"MEMBER":"telegram:1","Points":5,"IDEMPOTENCY_KEY":"x"}`,
		"leading zeros":   `{"member":"telegram:01","points":5,"idempotency_key":"x"}`,
		"reserved key":    `{"member":"telegram:1","points":5,"idempotency_key":"tally:link:x"}`,
		"trailing data":   `{"member":"telegram:1","points":5,"idempotency_key":"x"} {}`,
		"not json":        `member=telegram:1&points=5`,
		"array":           `[1,2]`,
		"empty":           ``,
		"bad expiry":      `{"member":"telegram:1","points":5,"idempotency_key":"x","expires_at":"tomorrow"}`,
		"past expiry":     `{"member":"telegram:1","points":5,"idempotency_key":"x","expires_at":"2020-01-01T00:00:00Z"}`,
		"new member, bad": `{"member":"telegram:2","points":0,"idempotency_key":"x"}`,
	}
	for name, body := range bad {
		code, out := f.do("POST", "/v1/awards", body)
		if code != 400 || errCode(out) != "invalid" {
			t.Errorf("%s: %d %v, want 400 invalid", name, code, out)
		}
		if msg := fmt.Sprint(out["error"]); strings.Contains(msg, "internal") {
			t.Errorf("%s: message %q", name, msg)
		}
	}
	huge := `{"member":"telegram:1","points":5,"idempotency_key":"x","reason":"` + strings.Repeat("a", 1<<20) + `"}`
	if code, out := f.do("POST", "/v1/awards", huge); code != 400 || !strings.Contains(fmt.Sprint(out), "exceeds") {
		t.Errorf("body over 1 MiB: %d %v", code, out)
	}
	req, _ := http.NewRequest("POST", f.srv.URL+"/v1/awards", strings.NewReader(`member=1`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 400 {
		t.Errorf("form body: %v %v", resp, err)
	}
	for name, body := range map[string]string{
		"deduct zero":       `{"member":"telegram:1","points":0,"idempotency_key":"x"}`,
		"deduct expiry":     `{"member":"telegram:1","points":1,"idempotency_key":"x","expires_at":"2030-01-01T00:00:00Z"}`,
		"deduct 1e3":        `{"member":"telegram:1","points":1e3,"idempotency_key":"x"}`,
		"deduct bad member": `{"member":"x:1","points":1,"idempotency_key":"x"}`,
	} {
		if code, out := f.do("POST", "/v1/deductions", body); code != 400 || errCode(out) != "invalid" {
			t.Errorf("%s: %d %v", name, code, out)
		}
	}
	if code, _ := f.do("GET", "/v1/members/telegram:2", ""); code != 404 {
		t.Fatalf("invalid award created a member: %d", code)
	}
	if b := f.balance("telegram:1"); b != 10 {
		t.Fatalf("balance %v after bad input, want 10", b)
	}
	f.mustCheck()
}

func TestAdminAPI_Deductions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.do("POST", "/v1/awards", `{"member":"discord:80351110224678912","points":100,"idempotency_key":"a"}`)
	d := `{"member":"discord:80351110224678912","points":60,"reason":"t-shirt","idempotency_key":"order-1"}`
	code, body := f.do("POST", "/v1/deductions", d)
	if code != 201 || body["balance"].(float64) != 40 || body["points"].(float64) != 60 {
		t.Fatalf("deduction: %d %v", code, body)
	}
	if code, again := f.do("POST", "/v1/deductions", d); code != 200 || fmt.Sprint(again) != fmt.Sprint(body) {
		t.Fatalf("replay: %d %v", code, again)
	}
	code, body = f.do("POST", "/v1/deductions", `{"member":"discord:80351110224678912","points":41,"idempotency_key":"order-2"}`)
	if code != 422 || errCode(body) != "insufficient_points" {
		t.Fatalf("insufficient: %d %v", code, body)
	}
	code, body = f.do("POST", "/v1/deductions", `{"member":"telegram:999","points":1,"idempotency_key":"order-3"}`)
	if code != 404 || errCode(body) != "not_found" {
		t.Fatalf("unknown member: %d %v", code, body)
	}
	code, body = f.do("POST", "/v1/deductions", `{"member":"discord:80351110224678912","points":60,"reason":"t-shirt","idempotency_key":"a"}`)
	if code != 409 {
		t.Fatalf("award key used for a deduction: %d %v", code, body)
	}
	if b := f.balance("discord:80351110224678912"); b != 40 {
		t.Fatalf("balance %v, want 40", b)
	}
	f.mustCheck()
}

func TestAdminAPI_Batch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.do("POST", "/v1/awards", `{"member":"telegram:1","points":1,"idempotency_key":"used"}`)
	batch := `{"awards":[
		{"member":"telegram:1","points":10,"idempotency_key":"b1"},
		{"member":"telegram:2","points":20,"idempotency_key":"b2","expires_at":"2027-01-01T00:00:00Z"},
		{"member":"telegram:3","points":30,"idempotency_key":"used"},
		{"member":"999","points":30,"idempotency_key":"b4"}]}`
	code, body := f.do("POST", "/v1/awards/batch", batch)
	if code != 200 {
		t.Fatalf("batch: %d %v", code, body)
	}
	results := body["results"].([]any)
	statuses := []float64{201, 201, 409, 404}
	for i, want := range statuses {
		r := results[i].(map[string]any)
		if r["status"].(float64) != want {
			t.Errorf("item %d: %v, want status %v", i, r, want)
		}
	}
	if r := results[0].(map[string]any); r["balance"].(float64) != 11 || r["transaction_id"] == nil {
		t.Errorf("item 0: %v", r)
	}
	code, body = f.do("POST", "/v1/awards/batch", batch)
	results = body["results"].([]any)
	if code != 200 || results[0].(map[string]any)["status"].(float64) != 200 || results[1].(map[string]any)["status"].(float64) != 200 {
		t.Fatalf("batch replay: %d %v", code, body)
	}
	for name, b := range map[string]string{
		"empty":      `{"awards":[]}`,
		"bad item":   `{"awards":[{"member":"telegram:1","points":10,"idempotency_key":"c1"},{"member":"telegram:1","points":-1,"idempotency_key":"c2"}]}`,
		"dup keys":   `{"awards":[{"member":"telegram:1","points":10,"idempotency_key":"c1"},{"member":"telegram:4","points":1,"idempotency_key":"c1"}]}`,
		"not array":  `{"awards":{}}`,
		"extra":      `{"awards":[{"member":"telegram:1","points":10,"idempotency_key":"c1"}],"x":1}`,
		"item field": `{"awards":[{"member":"telegram:1","points":10,"idempotency_key":"c1","y":2}]}`,
	} {
		if code, out := f.do("POST", "/v1/awards/batch", b); code != 400 || errCode(out) != "invalid" {
			t.Errorf("%s: %d %v", name, code, out)
		}
	}
	var items []string
	for i := range 1001 {
		items = append(items, fmt.Sprintf(`{"member":"telegram:%d","points":1,"idempotency_key":"m%d"}`, i+10, i))
	}
	if code, out := f.do("POST", "/v1/awards/batch", `{"awards":[`+strings.Join(items, ",")+`]}`); code != 400 {
		t.Errorf("1001 items: %d %v", code, out)
	}
	code, out := f.do("POST", "/v1/awards/batch", `{"awards":[`+strings.Join(items[:1000], ",")+`]}`)
	if code != 200 || len(out["results"].([]any)) != 1000 {
		t.Fatalf("1000 items: %d", code)
	}
	if b := f.balance("telegram:1"); b != 11 {
		t.Fatalf("balance %v, want 11", b)
	}
	f.mustCheck()
}

func TestAdminAPI_MemberAndHistory(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if code, body := f.do("GET", "/v1/members/telegram:5", ""); code != 404 || errCode(body) != "not_found" {
		t.Fatalf("unknown member: %d %v", code, body)
	}
	for _, bad := range []string{"abc", "telegram:x", "0", "slack:1"} {
		if code, body := f.do("GET", "/v1/members/"+bad, ""); code != 400 || errCode(body) != "invalid" {
			t.Errorf("member %q: %d %v", bad, code, body)
		}
	}
	for i := range 5 {
		f.do("POST", "/v1/awards", fmt.Sprintf(`{"member":"telegram:5","points":%d,"reason":"r%d","idempotency_key":"h%d","expires_at":"2027-06-01T00:00:00Z"}`, i+1, i, i))
		f.clock.Advance(time.Second)
	}
	code, body := f.do("GET", "/v1/members/telegram:5", "")
	if code != 200 || body["balance"].(map[string]any)["available"].(float64) != 15 || body["balance"].(map[string]any)["pending"].(float64) != 0 ||
		fmt.Sprint(body["identities"]) != "[telegram:5]" || body["locale"] != nil {
		t.Fatalf("member: %d %v", code, body)
	}
	id := fmt.Sprint(int64(body["id"].(float64)))
	if code, byID := f.do("GET", "/v1/members/"+id, ""); code != 200 || byID["id"] != body["id"] {
		t.Fatalf("member by id: %d %v", code, byID)
	}
	code, page := f.do("GET", "/v1/members/telegram:5/history?limit=2", "")
	entries := page["entries"].([]any)
	if code != 200 || len(entries) != 2 || page["next_before"] == nil {
		t.Fatalf("history page 1: %d %v", code, page)
	}
	e := entries[0].(map[string]any)
	if e["points"].(float64) != 5 || e["kind"] != "award" || e["reason"] != "r4" || e["expires_at"] != "2027-06-01T00:00:00Z" {
		t.Fatalf("newest entry: %v", e)
	}
	seen := len(entries)
	next := page["next_before"]
	for next != nil {
		_, page = f.do("GET", fmt.Sprintf("/v1/members/telegram:5/history?limit=2&before=%v", int64(next.(float64))), "")
		seen += len(page["entries"].([]any))
		next = page["next_before"]
	}
	if seen != 5 {
		t.Fatalf("%d entries over all pages, want 5", seen)
	}
	for _, q := range []string{"limit=0", "limit=201", "limit=x", "before=-1", "before=abc"} {
		if code, body := f.do("GET", "/v1/members/telegram:5/history?"+q, ""); code != 400 || errCode(body) != "invalid" {
			t.Errorf("history?%s: %d %v", q, code, body)
		}
	}
	if code, body := f.do("GET", "/v1/members/telegram:6/history", ""); code != 404 {
		t.Errorf("history of unknown member: %d %v", code, body)
	}
	if code, body := f.do("GET", "/v1/nothing-here", ""); code != 404 || errCode(body) != "not_found" {
		t.Errorf("unknown call: %d %v", code, body)
	}
}

func TestProbesAndMetrics(t *testing.T) {
	t.Parallel()
	failing := api.Check{Name: "redis", Ping: func(context.Context) error { return errors.New("connection refused") }}
	f := newFixture(t)
	g := newFixture(t, api.WithReadiness(failing))
	if code, body := f.doWith("GET", "/healthz", "", ""); code != 200 || body["status"] != "ok" {
		t.Fatalf("healthz: %d %v", code, body)
	}
	if code, body := f.doWith("GET", "/readyz", "", ""); code != 200 || body["postgres"] != "ok" {
		t.Fatalf("readyz: %d %v", code, body)
	}
	if code, body := g.doWith("GET", "/readyz", "", ""); code != 503 || body["redis"] != "unreachable" || body["postgres"] != "ok" {
		t.Fatalf("readyz with Redis down: %d %v", code, body)
	}
	f.do("POST", "/v1/awards", `{"member":"telegram:1","points":5,"idempotency_key":"m1"}`)
	f.do("POST", "/v1/awards", `{"member":"telegram:1","points":5,"idempotency_key":"m1"}`)
	f.do("POST", "/v1/deductions", `{"member":"telegram:1","points":50,"idempotency_key":"m2"}`)
	resp, err := http.Get(f.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`tally_http_requests_total{code="201",method="POST",route="POST /v1/awards"} 1`,
		`tally_http_requests_total{code="200",method="POST",route="POST /v1/awards"} 1`,
		`tally_ledger_operations_total{op="award",outcome="ok"} 1`,
		`tally_ledger_operations_total{op="award",outcome="replayed"} 1`,
		`tally_ledger_operations_total{op="deduct",outcome="insufficient_points"} 1`,
		`tally_http_request_duration_seconds_bucket`,
		`tally_ledger_operation_duration_seconds_bucket`,
	} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestAdminAPI_InternalErrorsHideDetails: when the database is gone the caller
// gets 500 internal with a generic message; the details go to the log only.
func TestAdminAPI_InternalErrorsHideDetails(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	f := newFixture(t, api.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	f.pool.Close()
	code, body := f.do("POST", "/v1/awards", `{"member":"telegram:1","points":5,"idempotency_key":"k"}`)
	if code != 500 || errCode(body) != "internal" || body["error"].(map[string]any)["message"] != "internal error" {
		t.Fatalf("award on a closed database: %d %v", code, body)
	}
	if !strings.Contains(logs.String(), "closed pool") {
		t.Fatalf("the log lacks the cause: %s", logs.String())
	}
}
