package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

// Ranker reads a season's live standings. Postgres holds them; a Ranker may
// answer from a faster copy.
type Ranker interface {
	// Top returns the first n places.
	Top(ctx context.Context, season int64, n int) ([]Standing, error)
	// Rank returns the member's place; ok is false when they are not on the
	// board (not joined, or never scored while in it).
	Rank(ctx context.Context, season, member int64) (st Standing, ok bool, err error)
	// Board returns the first n places and, when member is not 0, the
	// member's place (nil when not on the board), read together.
	Board(ctx context.Context, season int64, n int, member int64) ([]Standing, *Standing, error)
}

// board reads Top and Rank one after the other.
func board(ctx context.Context, r Ranker, season int64, n int, member int64) ([]Standing, *Standing, error) {
	top, err := r.Top(ctx, season, n)
	if err != nil || member == 0 {
		return top, nil, err
	}
	st, ok, err := r.Rank(ctx, season, member)
	if err != nil || !ok {
		return top, nil, err
	}
	return top, &st, nil
}

// pgRanker counts places in Postgres: exact, and slow for low places on a
// board of a million (it counts everyone above).
type pgRanker struct{ pool *pgxpool.Pool }

func (r pgRanker) Top(ctx context.Context, season int64, n int) ([]Standing, error) {
	rows, err := r.pool.Query(ctx, `SELECT member_id, score, reached_at FROM season_scores
		WHERE season_id = $1 AND joined AND score > 0 ORDER BY score DESC, reached_at, member_id LIMIT $2`, season, n)
	if err != nil {
		return nil, fmt.Errorf("read standings: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Standing, error) {
		var st Standing
		return st, row.Scan(&st.Member, &st.Score, &st.ReachedAt)
	})
	if err != nil {
		return nil, fmt.Errorf("read standings: %w", err)
	}
	for i := range out {
		out[i].Rank = int64(i + 1)
	}
	return out, nil
}

func (r pgRanker) Board(ctx context.Context, season int64, n int, member int64) ([]Standing, *Standing, error) {
	return board(ctx, r, season, n, member)
}

func (r pgRanker) Rank(ctx context.Context, season, member int64) (Standing, bool, error) {
	st := Standing{Member: member}
	err := r.pool.QueryRow(ctx, `WITH me AS (
			SELECT score, reached_at FROM season_scores WHERE season_id = $1 AND member_id = $2 AND joined AND score > 0)
		SELECT me.score, me.reached_at, 1 + (SELECT count(*) FROM season_scores s
			WHERE s.season_id = $1 AND s.joined AND (s.score, me.reached_at, $2::bigint) > (me.score, s.reached_at, s.member_id))
		FROM me`, season, member).Scan(&st.Score, &st.ReachedAt, &st.Rank)
	if errors.Is(err, pgx.ErrNoRows) {
		return Standing{}, false, nil
	}
	if err != nil {
		return Standing{}, false, fmt.Errorf("read rank: %w", err)
	}
	return st, true, nil
}

// RedisRanker keeps each season's board in a Redis sorted set, copied from
// Postgres before every read: it copies every committed change since the
// oldest transaction that was still running at the last copy (by the xid
// that made it), and of two copies of a row keeps the one with the higher
// revision, so the board shows what Postgres shows and never goes back in
// time. A board found missing (a Redis flush) is rebuilt from Postgres while
// reads fall back to Postgres.
type RedisRanker struct {
	pool     *pgxpool.Pool
	rdb      redis.UniversalClient
	pg       pgRanker
	prefix   string
	log      *slog.Logger
	building sync.WaitGroup
}

// NewRedisRanker returns a ranker on the Redis at rdb whose keys start with
// prefix ("tally:board:"; benchmarks use their own).
func NewRedisRanker(pool *pgxpool.Pool, rdb redis.UniversalClient, prefix string) *RedisRanker {
	return &RedisRanker{pool: pool, rdb: rdb, pg: pgRanker{pool}, prefix: prefix, log: slog.Default()}
}

func (r *RedisRanker) boardKey(season int64) string   { return r.prefix + strconv.FormatInt(season, 10) }
func (r *RedisRanker) membersKey(season int64) string { return r.boardKey(season) + ":members" }
func (r *RedisRanker) markKey(season int64) string    { return r.boardKey(season) + ":mark" }
func (r *RedisRanker) buildKey(season int64) string   { return r.boardKey(season) + ":building" }

// boardMember encodes a place in the sorted set: among equal scores Redis
// orders members by their bytes, and a reverse range puts the greater first,
// so the earlier time (then the lower member id) is stored inverted.
func boardMember(reached time.Time, member int64) string {
	return fmt.Sprintf("%016x%016x", uint64(math.MaxInt64-reached.UnixMicro()), uint64(math.MaxInt64-member))
}

func memberOf(z string) (int64, error) {
	if len(z) != 32 {
		return 0, fmt.Errorf("board entry %q", z)
	}
	v, err := strconv.ParseUint(z[16:], 16, 64)
	if err != nil {
		return 0, err
	}
	return math.MaxInt64 - int64(v), nil
}

// applyScript applies one row's state if it is newer than what the board holds.
// KEYS: board, members. ARGV: member, revision, score, board member ("" when
// not joined).
var applyScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if cur then
  local sep = string.find(cur, '|', 1, true)
  if tonumber(string.sub(cur, 1, sep - 1)) >= tonumber(ARGV[2]) then return 0 end
  local old = string.sub(cur, sep + 1)
  if old ~= '' then redis.call('ZREM', KEYS[1], old) end
end
if ARGV[4] ~= '' then redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4]) end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. '|' .. ARGV[4])
return 1`)

// boardScript reads the first ARGV[1] places and the place of member ARGV[2]
// ("" for none) in one round trip: {members and scores…, rank, score}, rank
// -1 when the member is not on the board.
var boardScript = redis.NewScript(`
local out = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
local rank, score = -1, '0'
if ARGV[2] ~= '' then
  local cur = redis.call('HGET', KEYS[2], ARGV[2])
  if cur then
    local z = string.sub(cur, string.find(cur, '|', 1, true) + 1)
    if z ~= '' then
      local r = redis.call('ZREVRANK', KEYS[1], z)
      if r then rank = r; score = redis.call('ZSCORE', KEYS[1], z) end
    end
  end
end
table.insert(out, rank)
table.insert(out, score)
return out`)

// markScript raises the mark (the xid from which changes are copied). Only a
// rebuild creates the mark: a board without one is incomplete (a flush came
// between a read of the mark and this write).
var markScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(cur) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 1`)

type scoreRow struct {
	member  int64
	score   int64
	reached time.Time
	joined  bool
	rev     int64
}

// sync brings the board up to date; ready is false while it is being rebuilt.
func (r *RedisRanker) sync(ctx context.Context, season int64) (ready bool, err error) {
	mark, err := r.rdb.Get(ctx, r.markKey(season)).Result()
	if errors.Is(err, redis.Nil) {
		r.startRebuild(season)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// Every committed change made by a transaction at or after the mark; the
	// next mark is the oldest transaction running now, whose changes (not
	// visible yet) the next read copies.
	rows, err := r.pool.Query(ctx, `WITH h AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS hi)
		SELECT h.hi::text, s.member_id, s.score, s.reached_at, s.joined, s.rev
		FROM h LEFT JOIN season_scores s ON s.season_id = $1 AND s.xid >= $2::xid8`, season, mark)
	if err != nil {
		return false, fmt.Errorf("read score changes: %w", err)
	}
	var hi string
	var changes []scoreRow
	for rows.Next() {
		var member *int64
		var sr scoreRow
		var score *int64
		var reached *time.Time
		var joined *bool
		var rev *int64
		if err := rows.Scan(&hi, &member, &score, &reached, &joined, &rev); err != nil {
			rows.Close()
			return false, err
		}
		if member == nil {
			continue
		}
		sr.member, sr.score, sr.reached, sr.joined, sr.rev = *member, *score, *reached, *joined, *rev
		changes = append(changes, sr)
	}
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("read score changes: %w", err)
	}
	if h, m := parseXID(hi), parseXID(mark); h < m {
		// Transaction ids went back (a restored or moved database): the mark
		// means nothing any more.
		r.rdb.Del(ctx, r.markKey(season))
		r.startRebuild(season)
		return false, nil
	}
	if err := r.apply(ctx, season, changes); err != nil {
		return false, err
	}
	if hi != "" && hi != mark {
		if err := markScript.Run(ctx, r.rdb, []string{r.markKey(season)}, hi).Err(); err != nil {
			return false, err
		}
	}
	return true, nil
}

func (r *RedisRanker) apply(ctx context.Context, season int64, changes []scoreRow) error {
	if len(changes) == 0 {
		return nil
	}
	// A pipeline cannot fall back from EVALSHA to EVAL: load the script first
	// (after a flush or a Redis restart it is gone).
	if err := applyScript.Load(ctx, r.rdb).Err(); err != nil {
		return fmt.Errorf("load board script: %w", err)
	}
	keys := []string{r.boardKey(season), r.membersKey(season)}
	for from := 0; from < len(changes); from += 1000 {
		pipe := r.rdb.Pipeline()
		for _, c := range changes[from:min(from+1000, len(changes))] {
			z := ""
			if c.joined && c.score > 0 {
				z = boardMember(c.reached, c.member)
			}
			applyScript.Run(ctx, pipe, keys, c.member, c.rev, c.score, z)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("update board: %w", err)
		}
	}
	return nil
}

func parseXID(s string) uint64 {
	v, _ := strconv.ParseUint(s, 10, 64)
	return v
}

// startRebuild rebuilds a season's board in the background (a million
// members take seconds, longer than a chat platform waits for an answer);
// reads use Postgres until it is done.
func (r *RedisRanker) startRebuild(season int64) {
	r.building.Add(1)
	go func() {
		defer r.building.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if err := r.rebuild(ctx, season); err != nil {
			r.log.Warn("leaderboard: Redis board not rebuilt; reading Postgres meanwhile", "season", season, "err", err)
		}
	}()
}

// Wait waits for background rebuilds to finish (tests, shutdown).
func (r *RedisRanker) Wait() { r.building.Wait() }

// Forget deletes a season's board (a closed season is read from its final
// standings in Postgres).
func (r *RedisRanker) Forget(ctx context.Context, season int64) error {
	return r.rdb.Del(ctx, r.boardKey(season), r.membersKey(season), r.markKey(season)).Err()
}

// rebuild copies a season's board from Postgres into Redis. One instance
// builds at a time; the others read Postgres meanwhile.
func (r *RedisRanker) rebuild(ctx context.Context, season int64) error {
	ok, err := r.rdb.SetNX(ctx, r.buildKey(season), "1", 5*time.Minute).Result()
	if err != nil || !ok {
		return err
	}
	defer r.rdb.Del(context.Background(), r.buildKey(season))
	var hi string
	if err := r.pool.QueryRow(ctx, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text").Scan(&hi); err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	if err := r.rdb.Del(ctx, r.boardKey(season), r.membersKey(season), r.markKey(season)).Err(); err != nil {
		return err
	}
	rows, err := r.pool.Query(ctx, `SELECT member_id, score, reached_at, joined, rev FROM season_scores WHERE season_id = $1`, season)
	if err != nil {
		return fmt.Errorf("read scores: %w", err)
	}
	batch := make([]scoreRow, 0, 1000)
	for rows.Next() {
		var sr scoreRow
		if err := rows.Scan(&sr.member, &sr.score, &sr.reached, &sr.joined, &sr.rev); err != nil {
			rows.Close()
			return err
		}
		if batch = append(batch, sr); len(batch) == cap(batch) {
			if err := r.apply(ctx, season, batch); err != nil {
				rows.Close()
				return err
			}
			batch = batch[:0]
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read scores: %w", err)
	}
	if err := r.apply(ctx, season, batch); err != nil {
		return err
	}
	// Changes by transactions running when the copy started come next read.
	return r.rdb.Set(ctx, r.markKey(season), hi, 0).Err()
}

// Top returns the first n places from Redis, or from Postgres while the
// board is being built.
func (r *RedisRanker) Top(ctx context.Context, season int64, n int) ([]Standing, error) {
	ready, err := r.sync(ctx, season)
	if err != nil || !ready {
		return r.pg.Top(ctx, season, n)
	}
	zs, err := r.rdb.ZRevRangeWithScores(ctx, r.boardKey(season), 0, int64(n-1)).Result()
	if err != nil {
		return r.pg.Top(ctx, season, n)
	}
	out := make([]Standing, 0, len(zs))
	for i, z := range zs {
		id, err := memberOf(z.Member.(string))
		if err != nil {
			return nil, err
		}
		out = append(out, Standing{Rank: int64(i + 1), Member: id, Score: int64(z.Score)})
	}
	return out, nil
}

// Rank returns the member's place from Redis, or from Postgres while the
// board is being built.
func (r *RedisRanker) Rank(ctx context.Context, season, member int64) (Standing, bool, error) {
	ready, err := r.sync(ctx, season)
	if err != nil || !ready {
		return r.pg.Rank(ctx, season, member)
	}
	cur, err := r.rdb.HGet(ctx, r.membersKey(season), strconv.FormatInt(member, 10)).Result()
	if errors.Is(err, redis.Nil) {
		return Standing{}, false, nil
	}
	if err != nil {
		return r.pg.Rank(ctx, season, member)
	}
	_, z, _ := cutLast(cur, '|')
	if z == "" {
		return Standing{}, false, nil
	}
	pipe := r.rdb.Pipeline()
	rank := pipe.ZRevRank(ctx, r.boardKey(season), z)
	score := pipe.ZScore(ctx, r.boardKey(season), z)
	if _, err := pipe.Exec(ctx); err != nil {
		if errors.Is(err, redis.Nil) {
			return Standing{}, false, nil
		}
		return r.pg.Rank(ctx, season, member)
	}
	return Standing{Rank: rank.Val() + 1, Member: member, Score: int64(score.Val())}, true, nil
}

// Board returns the first n places and the member's place from Redis in one
// round trip after bringing the board up to date; from Postgres while the
// board is being built.
func (r *RedisRanker) Board(ctx context.Context, season int64, n int, member int64) ([]Standing, *Standing, error) {
	ready, err := r.sync(ctx, season)
	if err != nil || !ready {
		return board(ctx, r.pg, season, n, member)
	}
	who := ""
	if member != 0 {
		who = strconv.FormatInt(member, 10)
	}
	res, err := boardScript.Run(ctx, r.rdb, []string{r.boardKey(season), r.membersKey(season)}, n, who).Slice()
	if err != nil || len(res)%2 != 0 {
		return board(ctx, r.pg, season, n, member)
	}
	top := make([]Standing, 0, len(res)/2-1)
	for i := 0; i+3 < len(res); i += 2 {
		z, _ := res[i].(string)
		id, err := memberOf(z)
		if err != nil {
			return nil, nil, err
		}
		score, _ := strconv.ParseFloat(fmt.Sprint(res[i+1]), 64)
		top = append(top, Standing{Rank: int64(i/2 + 1), Member: id, Score: int64(score)})
	}
	rank, _ := res[len(res)-2].(int64)
	if rank < 0 {
		return top, nil, nil
	}
	score, _ := strconv.ParseFloat(fmt.Sprint(res[len(res)-1]), 64)
	return top, &Standing{Rank: rank + 1, Member: member, Score: int64(score)}, nil
}

func cutLast(s string, sep byte) (before, after string, ok bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
