package api_test

import (
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

func TestSeasons_LeaderboardCloseAndHistory(t *testing.T) {
	t.Parallel()
	pool := tallytest.DB(t)
	clock := tallytest.NewClock(time.Date(2026, 11, 10, 10, 0, 0, 0, time.UTC))
	l := ledger.New(pool, clock)
	prog, err := program.Parse([]byte("[program]\ntimezone = \"Europe/Berlin\"\n[seasons]\njoin = \"auto\"\nprizes = [50, 20]\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	svc := tasks.New(pool, l, prog, clock, slog.Default())
	srv := httptest.NewServer(api.New(l, api.WithAdminToken(token), api.WithSeasons(svc), api.WithAudit(svc)).Handler())
	t.Cleanup(srv.Close)
	f := &fixture{t: t, srv: srv, ledger: l, clock: clock}

	status, cur := f.do("GET", "/v1/seasons/current", "")
	if status != 200 || cur["number"].(float64) != 1 || cur["status"] != "open" || cur["join"] != "auto" || cur["ends_at"] != "2026-11-30T23:00:00Z" {
		t.Fatalf("current: %d %v", status, cur)
	}
	for i, p := range []int{30, 70, 50} {
		f.do("POST", "/v1/awards", fmt.Sprintf(`{"member":"telegram:%d","points":%d,"reason":"","idempotency_key":"k%d"}`, i+1, p, i))
	}
	status, board := f.do("GET", "/v1/leaderboard?limit=2&member=telegram:1", "")
	if status != 200 {
		t.Fatalf("leaderboard: %d %v", status, board)
	}
	entries := board["entries"].([]any)
	first := entries[0].(map[string]any)
	if len(entries) != 2 || first["rank"].(float64) != 1 || first["score"].(float64) != 70 ||
		first["member"].(map[string]any)["identities"].([]any)[0] != "telegram:2" {
		t.Fatalf("entries %v", entries)
	}
	if own := board["member_rank"].(map[string]any); own["rank"].(float64) != 3 || own["score"].(float64) != 30 {
		t.Fatalf("member_rank %v", own)
	}
	for _, bad := range []string{"?limit=0", "?limit=101", "?season=x", "?member=nobody"} {
		if status, body := f.do("GET", "/v1/leaderboard"+bad, ""); status != http.StatusBadRequest {
			t.Errorf("GET /v1/leaderboard%s: %d %v", bad, status, body)
		}
	}
	if status, _ := f.do("GET", "/v1/leaderboard?member=telegram:99", ""); status != http.StatusNotFound {
		t.Errorf("unknown member: %d", status)
	}
	if status, _ := f.do("GET", "/v1/leaderboard?season=42", ""); status != http.StatusNotFound {
		t.Errorf("unknown season: %d", status)
	}

	clock.Advance(time.Hour)
	id := int64(cur["id"].(float64))
	status, closed := f.do("POST", fmt.Sprintf("/v1/seasons/%d/close", id), "")
	if status != 200 {
		t.Fatalf("close: %d %v", status, closed)
	}
	season := closed["season"].(map[string]any)
	standings := season["standings"].([]any)
	if season["status"] != "closed" || len(standings) != 3 || standings[0].(map[string]any)["prize"].(float64) != 50 ||
		standings[2].(map[string]any)["prize"].(float64) != 0 || closed["next"].(map[string]any)["number"].(float64) != 2 {
		t.Fatalf("closed %v", closed)
	}
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/v1/seasons/%d/close", srv.URL, id), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("second close: %d %v", resp.StatusCode, resp.Header)
	}
	_, member := f.do("GET", "/v1/members/telegram:2", "")
	if member["balance"].(map[string]any)["available"].(float64) != 70+50 {
		t.Fatalf("winner %v: the prize was not paid exactly once", member)
	}
	status, list := f.do("GET", "/v1/seasons", "")
	seasons := list["seasons"].([]any)
	if status != 200 || len(seasons) != 2 || seasons[0].(map[string]any)["status"] != "open" ||
		len(seasons[1].(map[string]any)["standings"].([]any)) != 3 {
		t.Fatalf("seasons: %d %v", status, list)
	}
	// The closed season's final board, by id.
	_, final := f.do("GET", fmt.Sprintf("/v1/leaderboard?season=%d&member=telegram:1", id), "")
	if own := final["member_rank"].(map[string]any); own["rank"].(float64) != 3 {
		t.Fatalf("final board %v", final)
	}
	if status, _ := f.do("POST", "/v1/seasons/999/close", ""); status != http.StatusNotFound {
		t.Fatalf("closing an unknown season: %d", status)
	}
	_, audit := f.do("GET", "/v1/audit?limit=1", "")
	if e := audit["entries"].([]any)[0].(map[string]any); e["action"] != "close_season" || e["outcome"] != "not_found" {
		t.Fatalf("audit %v", e)
	}
}

func TestSeasons_DisabledWithoutASeasonsSection(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, path := range []string{"/v1/leaderboard", "/v1/seasons", "/v1/seasons/current"} {
		if status, body := f.do("GET", path, ""); status != http.StatusNotFound || errCode(body) != "not_found" {
			t.Errorf("%s: %d %v", path, status, body)
		}
	}
}
