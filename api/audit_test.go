package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tally-loyalty/tally/api"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/program"
	"github.com/tally-loyalty/tally/tallytest"
	"github.com/tally-loyalty/tally/tasks"
)

func TestAudit_AdminAndModeratorActionsNewestFirst(t *testing.T) {
	t.Parallel()
	pool := tallytest.DB(t)
	clock := tallytest.NewClock(time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC))
	l := ledger.New(pool, clock)
	prog, err := program.Parse([]byte("[moderation]\ntelegram_admin_ids = [900]\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	svc := tasks.New(pool, l, prog, clock, slog.Default())
	srv := httptest.NewServer(api.New(l, api.WithAdminToken(token), api.WithAudit(svc)).Handler())
	t.Cleanup(srv.Close)
	f := &fixture{t: t, srv: srv, ledger: l, clock: clock}

	award := `{"member":"telegram:1","points":100,"reason":"welcome","idempotency_key":"a1"}`
	f.do("POST", "/v1/awards", award)
	f.do("POST", "/v1/awards", award) // replay
	f.do("POST", "/v1/deductions", `{"member":"telegram:1","points":500,"reason":"too much","idempotency_key":"d1"}`)
	f.do("POST", "/v1/awards/batch", `{"awards":[{"member":"telegram:2","points":5,"reason":"","idempotency_key":"b1"},
		{"member":"telegram:3","points":6,"reason":"","idempotency_key":"a1"}]}`)
	mod, err := l.EnsureMember(context.Background(), "telegram", "900", "Mo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ModeratorAward(context.Background(), tasks.Actor{Member: mod.ID, Name: "Mo", Platform: "telegram"},
		ledger.MemberRef{Platform: "telegram", UserID: "1"}, 7, "helpful"); err != nil {
		t.Fatal(err)
	}

	status, body := f.do("GET", "/v1/audit?limit=4", "")
	if status != http.StatusOK {
		t.Fatalf("audit: %d %v", status, body)
	}
	entries := body["entries"].([]any)
	want := []string{"moderator award ok telegram:1", "admin award idempotency_conflict telegram:3", "admin award ok telegram:2",
		"admin deduct insufficient_points telegram:1"}
	if len(entries) != 4 {
		t.Fatalf("%d entries", len(entries))
	}
	for i, e := range entries {
		m := e.(map[string]any)
		actor := m["actor"].(map[string]any)
		got := fmt.Sprintf("%s %s %s %s", actor["kind"], m["action"], m["outcome"], m["target_ref"])
		if got != want[i] {
			t.Errorf("entry %d: %s, want %s", i, got, want[i])
		}
	}
	first := entries[0].(map[string]any)
	if first["actor"].(map[string]any)["name"] != "Mo" || first["target"].(map[string]any)["identities"].([]any)[0] != "telegram:1" ||
		first["points"].(float64) != 7 || first["reason"] != "helpful" {
		t.Fatalf("moderator entry %v", first)
	}
	next := body["next_before"].(float64)
	status, body = f.do("GET", fmt.Sprintf("/v1/audit?before=%d&limit=10", int64(next)), "")
	rest := body["entries"].([]any)
	if status != http.StatusOK || len(rest) != 2 || body["next_before"] != nil {
		t.Fatalf("second page: %d %v", status, body)
	}
	if m := rest[0].(map[string]any); m["outcome"] != "replayed" || m["idempotency_key"] != "a1" {
		t.Fatalf("replay entry %v", m)
	}
	for _, bad := range []string{"?limit=0", "?limit=201", "?limit=x", "?before=-1", "?before=abc"} {
		if status, body := f.do("GET", "/v1/audit"+bad, ""); status != http.StatusBadRequest || errCode(body) != "invalid" {
			t.Errorf("GET /v1/audit%s: %d %v", bad, status, body)
		}
	}
	if status, _ := f.doWith("GET", "/v1/audit", "", ""); status != http.StatusUnauthorized {
		t.Errorf("without the token: %d", status)
	}
}

func TestAdminToken_AsBasicPasswordOnlyForBrowserPages(t *testing.T) {
	t.Parallel()
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("{}")) })
	f := newFixture(t, api.WithHandler("/queues/", page, true))
	send := func(method, path string, header map[string]string, password string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, f.srv.URL+path, nil)
		req.SetBasicAuth("admin", password)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := send("GET", "/queues/", nil, token); resp.StatusCode != http.StatusOK {
		t.Fatalf("the queue page with the token as Basic password: %d", resp.StatusCode)
	}
	resp := send("GET", "/queues/", nil, "wrong-token-wrong-token")
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Header.Values("WWW-Authenticate")) != 2 {
		t.Fatalf("wrong password: %d %v", resp.StatusCode, resp.Header.Values("WWW-Authenticate"))
	}
	// A browser sends Basic credentials to every page of the host by itself:
	// the API takes only the bearer token, and the queue page refuses
	// cross-site changes.
	if resp := send("GET", "/v1/members/telegram:1", nil, token); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the API with Basic credentials: %d", resp.StatusCode)
	}
	if resp := send("POST", "/queues/api/queues/default:pause", map[string]string{"Sec-Fetch-Site": "cross-site"}, token); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a cross-site POST: %d", resp.StatusCode)
	}
	if resp := send("POST", "/queues/api/queues/default:pause", map[string]string{"Origin": "https://evil.example"}, token); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a POST from another origin: %d", resp.StatusCode)
	}
	if resp := send("POST", "/queues/api/queues/default:pause", map[string]string{"Sec-Fetch-Site": "same-origin"}, token); resp.StatusCode != http.StatusOK {
		t.Fatalf("a same-origin POST: %d", resp.StatusCode)
	}
}
