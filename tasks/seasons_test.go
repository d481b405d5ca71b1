package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/program"
	"github.com/tally-loyalty/tally/tallytest"
)

func seasonEnv(t *testing.T, cadence, join string, now time.Time) *env {
	t.Helper()
	prog, err := program.Parse([]byte(fmt.Sprintf(`
[program]
timezone = "Europe/Berlin"

[moderation]
telegram_admin_ids = [900]

[seasons]
cadence = %q
join = %q
prizes = [500, 300, 100]
telegram_announce_chat = -100777

[[tasks]]
key = "checkin"
points = 10
recurrence = "daily"
title = { en = "Daily check-in" }
`, cadence, join)), "test")
	if err != nil {
		t.Fatal(err)
	}
	pool := tallytest.DB(t)
	clock := tallytest.NewClock(now)
	l := ledger.New(pool, clock)
	svc := New(pool, l, prog, clock, slog.Default())
	rec := &tallytest.Notifier{}
	svc.SetNotifier(rec)
	return &env{svc: svc, ledger: l, clock: clock, notes: rec}
}

func (e *env) award(t *testing.T, member int64, points int64) {
	t.Helper()
	if _, err := e.ledger.Award(context.Background(), ledger.Award{Member: ledger.MemberRef{ID: member}, Points: points,
		Key: fmt.Sprintf("a-%d-%d", member, rand.Int64())}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) score(t *testing.T, season, member int64) (int64, bool) {
	t.Helper()
	st, ok, err := e.svc.ranks.Rank(context.Background(), season, member)
	if err != nil {
		t.Fatal(err)
	}
	return st.Score, ok
}

func TestSeasons_ScoreIsWhatWasEarnedWhileIn(t *testing.T) {
	t.Parallel()
	e := seasonEnv(t, program.CadenceMonthly, program.JoinOptIn, time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC))
	ctx := context.Background()
	season, err := e.svc.EnsureSeason(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if season.Number != 1 || season.EndsAt == nil || !season.EndsAt.Equal(time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC)) {
		t.Fatalf("first season %+v", season)
	}
	a := e.member(t, "1").Member
	e.award(t, a, 100) // before joining: not counted
	if already, err := e.svc.Join(ctx, a); err != nil || already {
		t.Fatalf("join: %v %v", already, err)
	}
	if already, _ := e.svc.Join(ctx, a); !already {
		t.Fatal("a second join is not reported as already in")
	}
	e.award(t, a, 40)
	if _, err := e.svc.Claim(ctx, e.member(t, "1"), "checkin", ""); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.PayClaim(ctx, e.notes.Pays()[0]); err != nil {
		t.Fatal(err)
	}
	// Spending and prizes do not change a score.
	if _, err := e.ledger.Deduct(ctx, ledger.Deduction{Member: ledger.MemberRef{ID: a}, Points: 30, Key: "spend"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ledger.AwardInternal(ctx, KindPrize, ledger.Award{Member: ledger.MemberRef{ID: a}, Points: 999, Key: "tally:test-prize"}); err != nil {
		t.Fatal(err)
	}
	if got, ok := e.score(t, season.ID, a); !ok || got != 50 {
		t.Fatalf("score %d (on board %v), want 40 + 10", got, ok)
	}
	if wasIn, err := e.svc.Leave(ctx, a); err != nil || !wasIn {
		t.Fatalf("leave: %v %v", wasIn, err)
	}
	e.award(t, a, 1000) // while out
	if _, ok := e.score(t, season.ID, a); ok {
		t.Fatal("a member who left is still on the board")
	}
	if _, err := e.svc.Join(ctx, a); err != nil {
		t.Fatal(err)
	}
	e.award(t, a, 5)
	if got, _ := e.score(t, season.ID, a); got != 55 {
		t.Fatalf("score after rejoining %d, want 55 (the 1000 earned while out do not count)", got)
	}
	e.check(t)
}

func TestSeasons_TiesGoToWhoReachedTheScoreFirst(t *testing.T) {
	t.Parallel()
	e := seasonEnv(t, program.CadenceMonthly, program.JoinAuto, time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC))
	ctx := context.Background()
	season, err := e.svc.EnsureSeason(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := e.member(t, "1").Member, e.member(t, "2").Member, e.member(t, "3").Member
	e.award(t, b, 100)
	e.clock.Advance(time.Second)
	e.award(t, a, 60)
	e.clock.Advance(time.Second)
	e.award(t, a, 40) // a reaches 100 after b
	e.award(t, c, 150)
	top, err := e.svc.ranks.Top(ctx, season.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(top[0].Member, top[1].Member, top[2].Member)
	if want := fmt.Sprint(c, b, a); got != want || top[1].Rank != 2 || top[2].Score != 100 {
		t.Fatalf("order %s, want %s (%+v)", got, want, top)
	}
	if st, ok, _ := e.svc.ranks.Rank(ctx, season.ID, a); !ok || st.Rank != 3 {
		t.Fatalf("rank of a: %+v", st)
	}
}

// TestSeasons_RolloverAtMonthEndInBerlin closes the March season (its end is
// 31 March 24:00 in Berlin, summer time since the 29th) and pays each prize once.
func TestSeasons_RolloverAtMonthEndInBerlin(t *testing.T) {
	t.Parallel()
	e := seasonEnv(t, program.CadenceMonthly, program.JoinAuto, time.Date(2026, 3, 20, 12, 0, 0, 0, time.UTC))
	ctx := context.Background()
	season, err := e.svc.EnsureSeason(ctx)
	if err != nil {
		t.Fatal(err)
	}
	end := time.Date(2026, 3, 31, 22, 0, 0, 0, time.UTC)
	if !season.EndsAt.Equal(end) {
		t.Fatalf("March season ends %v, want %v", season.EndsAt, end)
	}
	ids := make([]int64, 5)
	for i := range ids {
		ids[i] = e.member(t, fmt.Sprint(i+1)).Member
		e.award(t, ids[i], int64(100*(i+1))) // member 5 first, then 4, 3
	}
	if _, err := e.svc.Close(ctx, season.ID, false); err == nil {
		t.Fatal("a season closed by the rollover before its end")
	}
	e.clock.Set(end.Add(-time.Second))
	e.award(t, ids[0], 1000) // 23:59:59: still March; member 1 now leads with 1100
	e.clock.Set(end.Add(2 * time.Second))
	e.award(t, ids[1], 7) // 00:00:02 April, before the rollover ran: counts in April
	if due, err := e.svc.DueSeasons(ctx); err != nil || len(due) != 1 || due[0] != season.ID {
		t.Fatalf("due %v %v", due, err)
	}
	res, err := e.svc.Close(ctx, season.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed || res.Season.Status != SeasonClosed || !res.Season.EndsAt.Equal(end) {
		t.Fatalf("closed season %+v", res.Season)
	}
	wantNextEnd := time.Date(2026, 4, 30, 22, 0, 0, 0, time.UTC)
	if !res.Next.StartsAt.Equal(end) || !res.Next.EndsAt.Equal(wantNextEnd) || res.Next.Number != 2 {
		t.Fatalf("next season %+v", res.Next)
	}
	podium := fmt.Sprint(res.Standings[0].Member, res.Standings[1].Member, res.Standings[2].Member)
	if want := fmt.Sprint(ids[0], ids[4], ids[3]); podium != want || res.Standings[0].Score != 1100 || res.Standings[0].Prize != 500 ||
		res.Standings[2].Prize != 100 || res.Standings[3].Prize != 0 || res.Standings[0].PrizeTxn == 0 {
		t.Fatalf("standings %+v", res.Standings)
	}
	if got, _ := e.score(t, res.Next.ID, ids[1]); got != 7 {
		t.Fatalf("April score %d, want the 7 earned after midnight", got)
	}
	// Prizes do not count in April.
	if _, ok := e.score(t, res.Next.ID, ids[0]); ok {
		t.Fatal("a prize counted as an earning")
	}
	again, err := e.svc.Close(ctx, season.ID, true)
	if err != nil || !again.Replayed || len(again.Standings) != 5 || again.Next.ID != res.Next.ID {
		t.Fatalf("second close: %+v %v", again, err)
	}
	_, bal, _ := e.ledger.Member(ctx, ledger.MemberRef{ID: ids[0]})
	if bal.Available != 1100+500 {
		t.Fatalf("winner's balance %d, want 1600 (prize once)", bal.Available)
	}
	// Winners are told (three messages) and the podium posted once.
	if len(e.notes.Messages()) != 3+1 {
		t.Fatalf("%d messages handed on, want 4", len(e.notes.Messages()))
	}
	e.check(t)
}

func TestSeasons_QuarterEndsAtNewYearInBerlin(t *testing.T) {
	t.Parallel()
	e := seasonEnv(t, program.CadenceQuarterly, program.JoinAuto, time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC))
	season, err := e.svc.EnsureSeason(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC); !season.EndsAt.Equal(want) {
		t.Fatalf("Q4 ends %v, want %v", season.EndsAt, want)
	}
	e.clock.Set(time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC))
	res, err := e.svc.Close(context.Background(), season.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2027, 3, 31, 22, 0, 0, 0, time.UTC); !res.Next.EndsAt.Equal(want) {
		t.Fatalf("Q1 ends %v, want %v (summer time from 28 March)", res.Next.EndsAt, want)
	}
}

func TestSeasons_ConcurrentClosesPayOnce(t *testing.T) {
	t.Parallel()
	e := seasonEnv(t, program.CadenceMonthly, program.JoinAuto, time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC))
	ctx := context.Background()
	season, _ := e.svc.EnsureSeason(ctx)
	for i := range 4 {
		e.award(t, e.member(t, fmt.Sprint(i+1)).Member, int64(10*(i+1)))
	}
	var wg sync.WaitGroup
	results := make(chan CloseResult, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Awards keep coming while the season closes.
			e.award(t, e.member(t, "1").Member, 1)
			res, err := e.svc.Close(ctx, season.ID, true)
			if err != nil {
				t.Error(err)
			}
			results <- res
		}()
	}
	wg.Wait()
	close(results)
	first, nexts := 0, map[int64]bool{}
	for r := range results {
		if !r.Replayed {
			first++
		}
		nexts[r.Next.ID] = true
	}
	seasons, _ := e.svc.Seasons(ctx)
	if first != 1 || len(nexts) != 1 || len(seasons) != 2 {
		t.Fatalf("%d first closes, next seasons %v, %d seasons; want 1, one, 2", first, nexts, len(seasons))
	}
	var prizes int
	e.svc.pool.QueryRow(ctx, "SELECT count(*) FROM txns WHERE kind = 'prize'").Scan(&prizes)
	if prizes != 3 {
		t.Fatalf("%d prizes paid, want 3", prizes)
	}
	e.check(t)
}

func TestSeasons_CrashWhilePayingPrizesResumesOnce(t *testing.T) {
	t.Parallel()
	e := seasonEnv(t, program.CadenceMonthly, program.JoinAuto, time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC))
	ctx := context.Background()
	season, _ := e.svc.EnsureSeason(ctx)
	for i := range 3 {
		e.award(t, e.member(t, fmt.Sprint(i+1)).Member, int64(10*(i+1)))
	}
	e.svc.afterPrize = func(rank int64) error {
		if rank == 2 {
			return errors.New("killed")
		}
		return nil
	}
	if _, err := e.svc.Close(ctx, season.ID, true); err == nil {
		t.Fatal("the crash went unnoticed")
	}
	half, _ := e.svc.GetSeason(ctx, season.ID)
	if half.Status != SeasonClosing {
		t.Fatalf("status after the crash %s, want closing", half.Status)
	}
	if due, _ := e.svc.DueSeasons(ctx); len(due) != 1 {
		t.Fatalf("the half-closed season is not due: %v", due)
	}
	// The next season is open already: awards count there meanwhile.
	cur, err := e.svc.CurrentSeason(ctx)
	if err != nil || cur.Number != 2 {
		t.Fatalf("current %+v %v", cur, err)
	}
	e.svc.afterPrize = nil
	res, err := e.svc.Close(ctx, season.ID, false)
	if err != nil || !res.Replayed || res.Season.Status != SeasonClosed || res.Next.ID != cur.ID {
		t.Fatalf("resumed close %+v %v", res, err)
	}
	var prizes, points int64
	e.svc.pool.QueryRow(ctx, "SELECT count(*), sum(points) FROM txns WHERE kind = 'prize'").Scan(&prizes, &points)
	if prizes != 3 || points != 900 {
		t.Fatalf("%d prizes of %d points, want 3 of 900", prizes, points)
	}
	if seasons, _ := e.svc.Seasons(ctx); len(seasons) != 2 {
		t.Fatalf("%d seasons, want 2", len(seasons))
	}
	e.check(t)
}

func TestRedisRanker_MatchesPostgresAndSurvivesAFlush(t *testing.T) {
	t.Parallel()
	e := seasonEnv(t, program.CadenceMonthly, program.JoinOptIn, time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC))
	ctx := context.Background()
	opt, err := redis.ParseURL(tallytest.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	rr := NewRedisRanker(e.svc.pool, rdb, "tally:board:")
	pg := pgRanker{e.svc.pool}
	season, _ := e.svc.EnsureSeason(ctx)
	var members []int64
	for i := range 60 {
		m := e.member(t, fmt.Sprint(i+1)).Member
		members = append(members, m)
		if i%10 != 9 { // every tenth never joins
			e.svc.Join(ctx, m)
		}
	}
	// compare checks the Redis board against Postgres (polling a moment, in
	// case a read lands while a build started by an earlier one runs).
	compare := func(when string) {
		t.Helper()
		var diff string
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if diff = boardDiff(ctx, rr, pg, rdb, season.ID, members); diff == "" {
				return
			}
		}
		t.Fatalf("%s: %s", when, diff)
	}
	round := func() {
		for range 100 {
			m := members[rand.IntN(len(members))]
			e.award(t, m, int64(1+rand.IntN(3))) // small scores: many ties
			e.clock.Advance(time.Duration(rand.IntN(2)) * time.Second)
		}
	}
	round()
	compare("first build")
	round()
	e.svc.Leave(ctx, members[0])
	e.svc.Join(ctx, members[9])
	compare("after changes")
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	round()
	compare("after a flush")
}

func stripTimes(s []Standing) []Standing {
	out := make([]Standing, len(s))
	for i, st := range s {
		out[i] = Standing{Rank: st.Rank, Member: st.Member, Score: st.Score}
	}
	return out
}

// boardDiff says how the Redis board differs from Postgres ("" when not).
func boardDiff(ctx context.Context, rr *RedisRanker, pg pgRanker, rdb *redis.Client, season int64, members []int64) string {
	rr.Top(ctx, season, 1) // a board being built is answered from Postgres
	// The board answers from Redis, not by falling back to Postgres.
	if ready, err := rr.sync(ctx, season); !ready || err != nil {
		return fmt.Sprintf("the Redis board is not in use: ready %v, %v", ready, err)
	}
	if n, _ := rdb.ZCard(ctx, rr.boardKey(season)).Result(); n == 0 {
		return "the Redis board is empty"
	}
	want, _ := pg.Top(ctx, season, 100)
	got, err := rr.Top(ctx, season, 100)
	if err != nil {
		return err.Error()
	}
	if fmt.Sprint(stripTimes(got)) != fmt.Sprint(stripTimes(want)) {
		return fmt.Sprintf("redis top\n%v\npostgres\n%v", stripTimes(got), stripTimes(want))
	}
	for _, m := range members {
		top, own, err := rr.Board(ctx, season, 5, m)
		w, wok, _ := pg.Rank(ctx, season, m)
		if err != nil || fmt.Sprint(stripTimes(top)) != fmt.Sprint(stripTimes(want[:min(5, len(want))])) || (own != nil) != wok ||
			(own != nil && (own.Rank != w.Rank || own.Score != w.Score)) {
			return fmt.Sprintf("board for %d: %v %+v (%v); want %v %+v", m, stripTimes(top), own, err, stripTimes(want[:min(5, len(want))]), w)
		}
		g, gok, err := rr.Rank(ctx, season, m)
		if err != nil || wok != gok || w.Rank != g.Rank || w.Score != g.Score {
			return fmt.Sprintf("member %d: redis %+v %v, postgres %+v %v (%v)", m, g, gok, w, wok, err)
		}
	}
	return ""
}

func TestSeasons_LinkedAccountsAreOneOnTheBoard(t *testing.T) {
	t.Parallel()
	e := seasonEnv(t, program.CadenceMonthly, program.JoinOptIn, time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC))
	ctx := context.Background()
	season, _ := e.svc.EnsureSeason(ctx)
	a := e.member(t, "1").Member
	p, _ := e.ledger.EnsureMember(ctx, "discord", "2", "b")
	b := p.ID
	e.svc.Join(ctx, b) // only the Discord account joined
	e.award(t, a, 100) // not in: does not count
	e.award(t, b, 70)
	code, _, _ := e.ledger.CreateLinkCode(ctx, b, "discord")
	res, err := e.ledger.Link(ctx, code, a)
	if err != nil || res.Outcome != ledger.Linked || res.Survivor != a {
		t.Fatalf("link %+v %v", res, err)
	}
	for range 2 { // again changes nothing
		if err := e.svc.MergeScores(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if got, ok := e.score(t, season.ID, a); !ok || got != 70 {
		t.Fatalf("survivor's score %d (on board %v), want the 70 the joined account earned", got, ok)
	}
	if _, ok := e.score(t, season.ID, b); ok {
		t.Fatal("the merged-away account is still on the board")
	}
	if in, _ := e.svc.Joined(ctx, a); !in {
		t.Fatal("the survivor did not take over the season membership")
	}
	e.award(t, a, 5)
	if got, _ := e.score(t, season.ID, a); got != 75 {
		t.Fatalf("score after a new award %d, want 75", got)
	}
}

func TestSeasons_LateAndEarlyClosesCountEachEarningOnce(t *testing.T) {
	t.Parallel()
	e := seasonEnv(t, program.CadenceMonthly, program.JoinAuto, time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC))
	ctx := context.Background()
	nov, _ := e.svc.EnsureSeason(ctx)
	a, b := e.member(t, "1").Member, e.member(t, "2").Member
	e.award(t, a, 10)
	// The rollover did not run for two months.
	e.clock.Set(time.Date(2027, 1, 10, 12, 0, 0, 0, time.UTC))
	e.award(t, b, 20)
	res, err := e.svc.Close(ctx, nov.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	dec := res.Next
	if due, _ := e.svc.DueSeasons(ctx); len(due) != 1 || due[0] != dec.ID {
		t.Fatalf("December is not due: %v", due)
	}
	res, err = e.svc.Close(ctx, dec.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	jan := res.Next
	if _, ok := e.score(t, dec.ID, b); ok {
		t.Fatal("January's award counted in December")
	}
	if got, ok := e.score(t, jan.ID, b); !ok || got != 20 {
		t.Fatalf("January score %d %v, want 20", got, ok)
	}
	// An award whose time was read before an operator's close but that
	// committed after it counts in the next season, once.
	early := e.clock.Now()
	e.clock.Set(early.Add(time.Second))
	res, err = e.svc.Close(ctx, jan.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	late := ledger.New(e.svc.pool, tallytest.NewClock(early))
	if _, err := late.Award(ctx, ledger.Award{Member: ledger.MemberRef{ID: a}, Points: 7, Key: "in-flight"}); err != nil {
		t.Fatal(err)
	}
	if got, ok := e.score(t, res.Next.ID, a); !ok || got != 7 {
		t.Fatalf("the in-flight award counts %d in the next season (%v), want 7", got, ok)
	}
	for _, st := range res.Standings {
		if st.Member == a && st.Score != 0 {
			t.Fatalf("the in-flight award counted in the closed season too: %+v", st)
		}
	}
}

func TestSeasons_CloseMergesLinkedAccountsFirst(t *testing.T) {
	t.Parallel()
	e := seasonEnv(t, program.CadenceMonthly, program.JoinAuto, time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC))
	ctx := context.Background()
	season, _ := e.svc.EnsureSeason(ctx)
	a := e.member(t, "1").Member
	p, _ := e.ledger.EnsureMember(ctx, "discord", "2", "b")
	e.award(t, a, 30)
	e.award(t, p.ID, 40)
	e.award(t, e.member(t, "3").Member, 50)
	code, _, _ := e.ledger.CreateLinkCode(ctx, p.ID, "discord")
	if res, err := e.ledger.Link(ctx, code, a); err != nil || res.Outcome != ledger.Linked {
		t.Fatalf("link %+v %v", res, err)
	}
	// No MergeScores call: a crash came between the link and the merge.
	e.clock.Advance(time.Hour)
	res, err := e.svc.Close(ctx, season.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Standings) != 2 || res.Standings[0].Member != a || res.Standings[0].Score != 70 {
		t.Fatalf("standings %+v: the linked accounts should be one member with 70", res.Standings)
	}
}
