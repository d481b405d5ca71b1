package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/api"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/program"
	"github.com/tally-loyalty/tally/tasks"
)

// Season targets (issue 6).
const (
	// TargetScoringCost is the most season scoring may slow awards down.
	TargetScoringCost = 0.20
	// TargetBoardRead is the p99 of a top 10 plus own rank through the admin API.
	TargetBoardRead = 5 * time.Millisecond
	// TargetClose is how long closing a season of a million may take.
	TargetClose = 30 * time.Second
	boardReads  = 1000
	benchToken  = "tally-bench-admin-token"
	boardPrefix = "tally_bench:board:"
)

const seasonsBenchProgram = `
[program]
name = "Bench"

[seasons]
join = "auto"
prizes = [1000, 500, 250]
`

// scoringResult compares awards without and with an open season.
type scoringResult struct {
	singleOff, singleOn load
	batchOff, batchOn   load
}

func (r scoringResult) singleCost() float64 { return 1 - r.singleOn.rate()/r.singleOff.rate() }
func (r scoringResult) batchCost() float64  { return 1 - r.batchOn.rate()/r.batchOff.rate() }

// boardResult is the season board at scale.
type boardResult struct {
	members  int
	load     time.Duration
	build    time.Duration // the first read, which copies the board into Redis
	reads    load          // top 10 plus own rank through the admin API
	close    time.Duration
	prizesOK bool
}

// seasonService opens a pool and a tasks service with an auto-join season
// programme on the bench database.
func seasonService(ctx context.Context, opt Options, benchURL string) (*tasks.Service, *ledger.Service, *pgxpool.Pool, error) {
	pool, err := openPool(ctx, benchURL, opt.Clients+4)
	if err != nil {
		return nil, nil, nil, err
	}
	prog, err := program.Parse([]byte(seasonsBenchProgram), "bench")
	if err != nil {
		pool.Close()
		return nil, nil, nil, err
	}
	l := ledger.New(pool, tally.SystemClock{})
	return tasks.New(pool, l, prog, tally.SystemClock{}, slog.New(slog.DiscardHandler)), l, pool, nil
}

// scoringPhase measures single and batch awards with no season open and
// with an auto-join season open (every award then also raises a score). The
// two alternate in four rounds each, so the tables' growth during the phase
// weighs on both alike.
func scoringPhase(ctx context.Context, opt Options, benchURL string, ids []int64, p *printer) (scoringResult, error) {
	var r scoringResult
	svc, l, pool, err := seasonService(ctx, opt, benchURL)
	if err != nil {
		return r, err
	}
	defer pool.Close()
	bc := min(opt.Clients, maxBatchClients)
	round := max(opt.Duration/4, 250*time.Millisecond)
	o := opt
	o.Duration = round
	add := func(sum *load, l load) {
		sum.ops += l.ops
		sum.items += l.items
		sum.elapsed += l.elapsed
	}
	p.say("4 rounds each of single awards from %d clients and batches of %d from %d, %s per round, no season open and one open in turn",
		opt.Clients, batchSize, bc, round)
	for i := range 4 {
		for _, on := range []bool{false, true} {
			if on {
				if _, err := svc.EnsureSeason(ctx); err != nil {
					return r, err
				}
			} else if _, err := pool.Exec(ctx, "UPDATE seasons SET status = 'closed', closed_at = now() WHERE status = 'open'"); err != nil {
				return r, err
			}
			tag := fmt.Sprintf("%v-%d", on, i)
			single, err := singleAwards(ctx, l, ids, o, "single-"+tag)
			if err != nil {
				return r, err
			}
			batch, err := batchAwards(ctx, l, ids, bc, round, "batch-"+tag)
			if err != nil {
				return r, err
			}
			if on {
				add(&r.singleOn, single)
				add(&r.batchOn, batch)
			} else {
				add(&r.singleOff, single)
				add(&r.batchOff, batch)
			}
		}
	}
	p.say("single awards: %.0f/s off, %.0f/s on: scoring costs %.1f%% (target ≤ %.0f%%) %s",
		r.singleOff.rate(), r.singleOn.rate(), 100*r.singleCost(), 100*TargetScoringCost, verdict(r.singleCost() <= TargetScoringCost))
	p.say("batch awards: %.0f/s off, %.0f/s on: scoring costs %.1f%% (target ≤ %.0f%%) %s",
		r.batchOff.rate(), r.batchOn.rate(), 100*r.batchCost(), 100*TargetScoringCost, verdict(r.batchCost() <= TargetScoringCost))
	// The phases after this one run with a season open.
	_, err = svc.EnsureSeason(ctx)
	return r, err
}

// boardPhase loads opt.SeasonMembers members into the open season by batch
// awards, reads the leaderboard through the admin API backed by the Redis
// board, and closes the season through the API.
func boardPhase(ctx context.Context, opt Options, benchURL string, p *printer) (boardResult, error) {
	r := boardResult{members: opt.SeasonMembers}
	svc, l, pool, err := seasonService(ctx, opt, benchURL)
	if err != nil {
		return r, err
	}
	defer pool.Close()
	ropt, err := redis.ParseURL(opt.RedisURL)
	if err != nil {
		return r, fmt.Errorf("REDIS_URL: %w", err)
	}
	rdb := redis.NewClient(ropt)
	defer rdb.Close()
	season, err := svc.EnsureSeason(ctx)
	if err != nil {
		return r, err
	}
	defer cleanBoard(rdb, season.ID)

	// Load: batches of 1000 new members each, from a few clients.
	start := time.Now()
	clients := min(opt.Clients, maxBatchClients)
	batches := (opt.SeasonMembers + batchSize - 1) / batchSize
	var next, done atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				b := int(next.Add(1)) - 1
				if b >= batches || ctx.Err() != nil {
					return
				}
				n := min(batchSize, opt.SeasonMembers-b*batchSize)
				awards := make([]ledger.Award, n)
				for i := range awards {
					m := b*batchSize + i
					awards[i] = ledger.Award{Member: ledger.MemberRef{Platform: "telegram", UserID: strconv.Itoa(1_000_000_000 + m)},
						Points: 1 + rand.Int64N(100_000), Reason: "season load", Key: "season-load-" + strconv.Itoa(m)}
				}
				res, err := l.AwardBatch(ctx, awards)
				if err == nil {
					err = batchErr(res)
				}
				if err != nil {
					errs <- fmt.Errorf("load batch %d: %w", b, err)
					return
				}
				if d := done.Add(1); d%int64(max(batches/10, 1)) == 0 {
					p.say("loaded %d of %d members (%s)", min(int(d)*batchSize, opt.SeasonMembers), opt.SeasonMembers, round(time.Since(start)))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return r, err
	}
	r.load = time.Since(start)
	if _, err := pool.Exec(ctx, "ANALYZE season_scores"); err != nil {
		return r, err
	}

	ranker := tasks.NewRedisRanker(pool, rdb, boardPrefix)
	svc.SetRanker(ranker)
	srv := httptest.NewServer(api.New(l, api.WithAdminToken(benchToken), api.WithSeasons(svc)).Handler())
	defer srv.Close()
	get := func(path string) (time.Duration, error) {
		t := time.Now()
		status, body, err := call(ctx, "GET", srv.URL+path)
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("GET %s: %d %s", path, status, body)
		}
		return time.Since(t), err
	}
	// The first read starts copying the board into Redis; until it is done
	// reads are answered from Postgres.
	buildStart := time.Now()
	if _, err := get("/v1/leaderboard?limit=10"); err != nil {
		return r, err
	}
	ranker.Wait()
	r.build = time.Since(buildStart)
	if _, err := get("/v1/leaderboard?limit=10"); err != nil {
		return r, err
	}
	p.say("board of %d copied into Redis after the first read: %s", opt.SeasonMembers, round(r.build))
	lat := make([]time.Duration, 0, boardReads)
	readStart := time.Now()
	for range boardReads {
		m := rand.IntN(opt.SeasonMembers)
		d, err := get("/v1/leaderboard?limit=10&member=telegram:" + strconv.Itoa(1_000_000_000+m))
		if err != nil {
			return r, err
		}
		lat = append(lat, d)
	}
	slices.Sort(lat)
	r.reads = load{ops: len(lat), items: len(lat), elapsed: time.Since(readStart), lat: lat}

	t := time.Now()
	status, body, err := call(ctx, "POST", fmt.Sprintf("%s/v1/seasons/%d/close", srv.URL, season.ID))
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("close: %d %s", status, body)
	}
	if err != nil {
		return r, err
	}
	r.close = time.Since(t)
	var prizes int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM season_standings WHERE season_id = $1 AND prize > 0 AND prize_txn IS NOT NULL", season.ID).Scan(&prizes); err != nil {
		return r, err
	}
	r.prizesOK = prizes == 3
	return r, nil
}

// call sends an admin API request and returns its status and body.
func call(ctx context.Context, method, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+benchToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode == http.StatusOK && !json.Valid(body) {
		err = fmt.Errorf("%s %s: answer is not JSON", method, url)
	}
	return resp.StatusCode, string(body), err
}

// cleanBoard removes the bench's Redis board.
func cleanBoard(rdb *redis.Client, season int64) {
	prefix := boardPrefix + strconv.FormatInt(season, 10)
	rdb.Del(context.Background(), prefix, prefix+":members", prefix+":mark", prefix+":building")
}
