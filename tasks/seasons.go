package tasks

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/program"
)

// Season states.
const (
	SeasonOpen    = "open"
	SeasonClosing = "closing" // standings frozen, prizes being paid
	SeasonClosed  = "closed"
)

// KindPrize pays a season prize; prizes do not count towards any score.
const KindPrize = "prize"

// Kinds of messages seasons send.
const (
	KindSeasonPrize    = "season_prize"    // to a winner
	KindSeasonAnnounce = "season_announce" // the podium, to the announcement chats
)

// Season is one season of the leaderboard.
type Season struct {
	ID       int64
	Number   int64
	StartsAt time.Time
	EndsAt   *time.Time // nil: until an operator closes it
	Status   string
	AutoJoin bool
	Prizes   []int64
	ClosedAt *time.Time
}

// Standing is a member's place on a leaderboard.
type Standing struct {
	Rank      int64
	Member    int64
	Name      string
	Score     int64
	ReachedAt time.Time
	Prize     int64 // final standings: the prize of the rank (0 for none)
	PrizeTxn  int64 // and the transaction that paid it, once paid
}

// ErrNoSeason is returned when the programme has no season running.
var ErrNoSeason = tally.Errorf(tally.ENOTFOUND, "no season is running (the programme file has no [seasons] section)")

const seasonColumns = `id, number, starts_at, ends_at, status, auto_join, prizes, closed_at`

func scanSeason(row pgx.Row) (Season, error) {
	var s Season
	err := row.Scan(&s.ID, &s.Number, &s.StartsAt, &s.EndsAt, &s.Status, &s.AutoJoin, &s.Prizes, &s.ClosedAt)
	return s, err
}

// seasonAt is the season that starts at start under the programme's cadence.
func (s *Service) seasonBounds(start time.Time) (time.Time, *time.Time) {
	_, end := s.prog.Seasons.Bounds(start, s.prog.Location)
	if end.IsZero() {
		return start, nil
	}
	end = end.UTC()
	return start, &end
}

// EnsureSeason opens a season when the programme has seasons and none is open
// or closing: the first one at start, or the next after a close that a crash
// interrupted. It is safe to call from several instances at once.
func (s *Service) EnsureSeason(ctx context.Context) (Season, error) {
	if s.prog.Seasons == nil {
		return Season{}, ErrNoSeason
	}
	now := s.now()
	var out Season
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended('tally:seasons', 0))"); err != nil {
			return fmt.Errorf("lock seasons: %w", err)
		}
		cur, err := scanSeason(tx.QueryRow(ctx, "SELECT "+seasonColumns+" FROM seasons WHERE status = 'open'"))
		if err == nil {
			out = cur
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("read season: %w", err)
		}
		// The first season, or seasons turned on again: they start now (a
		// close opens the next season itself, so there is no gap to fill).
		var number int64
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(number), 0) FROM seasons").Scan(&number); err != nil {
			return fmt.Errorf("read seasons: %w", err)
		}
		out, err = s.openSeason(ctx, tx, number+1, now, nil)
		return err
	})
	return out, err
}

// openSeason inserts season number n starting at start. copyFrom, when set,
// is where the previous season ended as planned: earnings made from then on
// that committed before this season opened (a late close) count here.
func (s *Service) openSeason(ctx context.Context, tx pgx.Tx, n int64, start time.Time, copyFrom *time.Time) (Season, error) {
	cfg := s.prog.Seasons
	start, end := s.seasonBounds(start.UTC().Truncate(time.Microsecond))
	prizes := cfg.Prizes
	if prizes == nil {
		prizes = []int64{}
	}
	season, err := scanSeason(tx.QueryRow(ctx, `INSERT INTO seasons (number, starts_at, ends_at, status, auto_join, prizes)
		VALUES ($1, $2, $3, 'open', $4, $5) RETURNING `+seasonColumns, n, start, end, cfg.Join == program.JoinAuto, prizes))
	if err != nil {
		return Season{}, fmt.Errorf("open season %d: %w", n, err)
	}
	if copyFrom == nil || !copyFrom.Before(s.now()) {
		return season, nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO season_scores (season_id, member_id, score, reached_at)
		SELECT $1, t.member_id, sum(t.points), max(t.created_at) FROM txns t
		WHERE t.created_at >= $2 AND ($3::timestamptz IS NULL OR t.created_at < $3)
		  AND t.kind IN ('award', 'task', 'purchase') AND t.points > 0
		  AND ($4 OR EXISTS (SELECT 1 FROM season_members m WHERE m.member_id = t.member_id))
		GROUP BY t.member_id ORDER BY t.member_id`, season.ID, *copyFrom, end, season.AutoJoin); err != nil {
		return Season{}, fmt.Errorf("count earnings into season %d: %w", n, err)
	}
	return season, nil
}

// CurrentSeason returns the open season.
func (s *Service) CurrentSeason(ctx context.Context) (Season, error) {
	if s.prog.Seasons == nil {
		return Season{}, ErrNoSeason
	}
	season, err := scanSeason(s.pool.QueryRow(ctx, "SELECT "+seasonColumns+" FROM seasons WHERE status = 'open'"))
	if errors.Is(err, pgx.ErrNoRows) {
		return s.EnsureSeason(ctx)
	}
	if err != nil {
		return Season{}, fmt.Errorf("read season: %w", err)
	}
	return season, nil
}

// GetSeason returns a season by id.
func (s *Service) GetSeason(ctx context.Context, id int64) (Season, error) {
	season, err := scanSeason(s.pool.QueryRow(ctx, "SELECT "+seasonColumns+" FROM seasons WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Season{}, tally.Errorf(tally.ENOTFOUND, "season %d not found", id)
	}
	if err != nil {
		return Season{}, fmt.Errorf("read season: %w", err)
	}
	return season, nil
}

// Seasons returns every season, newest first.
func (s *Service) Seasons(ctx context.Context) ([]Season, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+seasonColumns+" FROM seasons ORDER BY number DESC")
	if err != nil {
		return nil, fmt.Errorf("read seasons: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Season, error) { return scanSeason(r) })
	if err != nil {
		return nil, fmt.Errorf("read seasons: %w", err)
	}
	return out, nil
}

// Joined reports whether the member is in the seasons.
func (s *Service) Joined(ctx context.Context, member int64) (bool, error) {
	if s.prog.Seasons != nil && s.prog.Seasons.Join == program.JoinAuto {
		return true, nil
	}
	var in bool
	if err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM season_members WHERE member_id = $1)", member).Scan(&in); err != nil {
		return false, fmt.Errorf("read season membership: %w", err)
	}
	return in, nil
}

// Join puts the member in the current and every later season; earnings from
// now on count. already is set when they were in.
func (s *Service) Join(ctx context.Context, member int64) (already bool, err error) {
	season, err := s.CurrentSeason(ctx)
	if err != nil {
		return false, err
	}
	if season.AutoJoin {
		return true, nil
	}
	now := s.now()
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		// The member's row orders this with their awards (the ledger locks it too).
		if _, err := tx.Exec(ctx, "SELECT 1 FROM members WHERE id = $1 FOR UPDATE", member); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "INSERT INTO season_members (member_id, joined_at) VALUES ($1, $2) ON CONFLICT DO NOTHING", member, now)
		if err != nil {
			return fmt.Errorf("join: %w", err)
		}
		already = tag.RowsAffected() == 0
		_, err = tx.Exec(ctx, `INSERT INTO season_scores (season_id, member_id, score, reached_at) VALUES ($1, $2, 0, $3)
			ON CONFLICT (season_id, member_id) DO UPDATE SET joined = true, xid = pg_current_xact_id(), rev = season_scores.rev + 1
			WHERE NOT season_scores.joined`,
			season.ID, member, now)
		return err
	})
	return already, err
}

// Leave takes the member out of the seasons: off the board, earnings no longer
// count; a later join brings back their score of the season. wasIn is false
// when they were not in.
func (s *Service) Leave(ctx context.Context, member int64) (wasIn bool, err error) {
	season, err := s.CurrentSeason(ctx)
	if err != nil {
		return false, err
	}
	if season.AutoJoin {
		return false, tally.Errorf(tally.EINVALID, "every member takes part in this programme's seasons")
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT 1 FROM members WHERE id = $1 FOR UPDATE", member); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "DELETE FROM season_members WHERE member_id = $1", member)
		if err != nil {
			return fmt.Errorf("leave: %w", err)
		}
		wasIn = tag.RowsAffected() > 0
		_, err = tx.Exec(ctx, `UPDATE season_scores SET joined = false, xid = pg_current_xact_id(), rev = rev + 1
			WHERE season_id = $1 AND member_id = $2 AND joined`, season.ID, member)
		return err
	})
	return wasIn, err
}

// PrizeKey is the ledger key that pays a season's prize for a rank.
func PrizeKey(season int64, rank int64) string {
	return ledger.ReservedKeyPrefix + "season:" + strconv.FormatInt(season, 10) + ":rank:" + strconv.FormatInt(rank, 10)
}

// standingsKept is how many final places a closed season keeps (at least
// every prize's).
const standingsKept = 100

// CloseResult is a closed season with its final standings.
type CloseResult struct {
	Season    Season
	Standings []Standing
	Next      Season
	// Replayed is set when the season was closed before this call.
	Replayed bool
}

// Close ends a season: now when an operator asks (manual), at its end when the
// rollover does. It freezes the standings, opens the next season, pays each
// prize once through the ledger, tells the winners and posts the podium.
// Closing a season that is closed (or being closed by a crashed run) resumes
// and returns the original result with Replayed set.
func (s *Service) Close(ctx context.Context, seasonID int64, manual bool) (CloseResult, error) {
	if s.prog.Seasons == nil {
		return CloseResult{}, ErrNoSeason
	}
	var res CloseResult
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		res = CloseResult{}
		// No ledger write runs while the standings are frozen: every earning
		// counts in exactly one season.
		if _, err := tx.Exec(ctx, "LOCK TABLE txns IN SHARE MODE"); err != nil {
			return fmt.Errorf("lock ledger: %w", err)
		}
		season, err := scanSeason(tx.QueryRow(ctx, "SELECT "+seasonColumns+" FROM seasons WHERE id = $1 FOR NO KEY UPDATE", seasonID))
		if errors.Is(err, pgx.ErrNoRows) {
			return tally.Errorf(tally.ENOTFOUND, "season %d not found", seasonID)
		}
		if err != nil {
			return fmt.Errorf("read season: %w", err)
		}
		if season.Status != SeasonOpen {
			res.Season, res.Replayed = season, true
			return nil
		}
		now := s.now()
		end := now
		if !manual {
			if season.EndsAt == nil || season.EndsAt.After(now) {
				return tally.Errorf(tally.EINVALID, "season %d has not ended yet", seasonID)
			}
			end = *season.EndsAt
		} else if season.EndsAt != nil && season.EndsAt.Before(now) {
			end = *season.EndsAt
		}
		planned := season.EndsAt
		if _, err := tx.Exec(ctx, "UPDATE seasons SET status = 'closing', ends_at = $2, closed_at = $3 WHERE id = $1",
			season.ID, end, now); err != nil {
			return fmt.Errorf("close season: %w", err)
		}
		// Accounts /link joined count as one before the standings freeze.
		if err := mergeAllScores(ctx, tx, season.ID, season.AutoJoin); err != nil {
			return err
		}
		season.Status, season.EndsAt, season.ClosedAt = SeasonClosing, &end, &now
		if _, err := tx.Exec(ctx, `INSERT INTO season_standings (season_id, rank, member_id, score, reached_at, prize)
			SELECT $1, r.rank, r.member_id, r.score, r.reached_at, coalesce(($3::bigint[])[r.rank], 0)
			FROM (SELECT member_id, score, reached_at,
			             row_number() OVER (ORDER BY score DESC, reached_at, member_id) AS rank
			      FROM season_scores WHERE season_id = $1 AND joined AND score > 0
			      ORDER BY score DESC, reached_at, member_id LIMIT $2) r`,
			season.ID, max(standingsKept, len(season.Prizes)), season.Prizes); err != nil {
			return fmt.Errorf("freeze standings: %w", err)
		}
		var number int64
		if err := tx.QueryRow(ctx, "SELECT max(number) FROM seasons").Scan(&number); err != nil {
			return err
		}
		res.Next, err = s.openSeason(ctx, tx, number+1, end, planned)
		res.Season = season
		return err
	})
	if err != nil {
		return CloseResult{}, err
	}
	if err := s.payPrizes(ctx, res.Season.ID); err != nil {
		return CloseResult{}, err
	}
	if f, ok := s.ranks.(interface {
		Forget(ctx context.Context, season int64) error
	}); ok {
		if err := f.Forget(ctx, res.Season.ID); err != nil {
			s.log.Warn("seasons: closed season's board not deleted from Redis", "season", res.Season.ID, "err", err)
		}
	}
	final, err := s.GetSeason(ctx, res.Season.ID)
	if err != nil {
		return CloseResult{}, err
	}
	res.Season = final
	if res.Standings, err = s.FinalStandings(ctx, res.Season.ID, standingsKept); err != nil {
		return CloseResult{}, err
	}
	if res.Replayed {
		next, err := scanSeason(s.pool.QueryRow(ctx, "SELECT "+seasonColumns+" FROM seasons WHERE number = $1", final.Number+1))
		if err == nil {
			res.Next = next
		}
	}
	return res, nil
}

// payPrizes pays the prizes of a closing season that are not paid yet, tells
// the winners and posts the podium, then marks the season closed. Every step
// is keyed, so running it again after a crash pays and says nothing twice.
func (s *Service) payPrizes(ctx context.Context, seasonID int64) error {
	rows, err := s.pool.Query(ctx, `SELECT rank, member_id, prize FROM season_standings
		WHERE season_id = $1 AND prize > 0 AND prize_txn IS NULL ORDER BY rank`, seasonID)
	if err != nil {
		return fmt.Errorf("read prizes: %w", err)
	}
	type prize struct{ rank, member, points int64 }
	unpaid, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (prize, error) {
		var p prize
		return p, r.Scan(&p.rank, &p.member, &p.points)
	})
	if err != nil {
		return fmt.Errorf("read prizes: %w", err)
	}
	var messages []int64
	for _, p := range unpaid {
		res, err := s.ledger.AwardInternal(ctx, KindPrize, ledger.Award{Member: ledger.MemberRef{ID: p.member}, Points: p.points,
			Reason: fmt.Sprintf("season prize, rank %d", p.rank), Key: PrizeKey(seasonID, p.rank)})
		if err != nil {
			return fmt.Errorf("pay prize of rank %d: %w", p.rank, err)
		}
		if s.afterPrize != nil {
			if err := s.afterPrize(p.rank); err != nil {
				return err
			}
		}
		err = s.inTx(ctx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "UPDATE season_standings SET prize_txn = $3 WHERE season_id = $1 AND rank = $2 AND prize_txn IS NULL",
				seasonID, p.rank, res.TxnID); err != nil {
				return fmt.Errorf("record prize: %w", err)
			}
			id, err := s.recordToMember(ctx, tx, fmt.Sprintf("season:%d:prize:%d", seasonID, p.rank), res.MemberID, KindSeasonPrize,
				map[string]any{"season": seasonID, "rank": p.rank, "points": p.points, "balance": res.Balance})
			if id != 0 {
				messages = append(messages, id)
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		for _, dest := range s.announceChats() {
			id, err := s.record(ctx, tx, outMessage{dedupe: fmt.Sprintf("season:%d:announce:%s", seasonID, dest.platform),
				platform: dest.platform, chatID: dest.chat, locale: s.prog.DefaultLocale, kind: KindSeasonAnnounce,
				params: map[string]any{"season": seasonID}})
			if err != nil {
				return err
			}
			if id != 0 {
				messages = append(messages, id)
			}
		}
		_, err := tx.Exec(ctx, "UPDATE seasons SET status = 'closed' WHERE id = $1 AND status = 'closing'", seasonID)
		return err
	})
	if err != nil {
		return fmt.Errorf("finish season %d: %w", seasonID, err)
	}
	for _, id := range messages {
		s.hand(ctx, "send", id, s.notify.Send)
	}
	return nil
}

func (s *Service) announceChats() []reviewChat {
	var out []reviewChat
	if c := s.prog.Seasons; c != nil {
		if c.TelegramAnnounceChat != "" {
			out = append(out, reviewChat{"telegram", c.TelegramAnnounceChat})
		}
		if c.DiscordAnnounceChannel != "" {
			out = append(out, reviewChat{"discord", c.DiscordAnnounceChannel})
		}
	}
	return out
}

// recordToMember records a message to a member on the platform they last
// used (the identity created or seen last), in their language.
func (s *Service) recordToMember(ctx context.Context, tx pgx.Tx, dedupe string, member int64, kind string, params map[string]any) (int64, error) {
	var platform, userID string
	var locale *string
	err := tx.QueryRow(ctx, `SELECT i.platform, i.user_id, coalesce(m.locale, m.seen_locale) FROM members m
		JOIN identities i ON i.member_id = m.id AND i.platform <> 'console'
		WHERE m.id = $1 ORDER BY i.created_at DESC LIMIT 1`, member).Scan(&platform, &userID, &locale)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil // a member only the admin API knows: nobody to tell
	}
	if err != nil {
		return 0, fmt.Errorf("read member %d: %w", member, err)
	}
	lang := s.prog.DefaultLocale
	if locale != nil && *locale != "" {
		lang = *locale
	}
	return s.record(ctx, tx, outMessage{dedupe: dedupe, member: member, platform: platform, userID: userID,
		locale: lang, kind: kind, params: params})
}

// FinalStandings returns up to limit final places of a closed season.
func (s *Service) FinalStandings(ctx context.Context, seasonID int64, limit int) ([]Standing, error) {
	rows, err := s.pool.Query(ctx, `SELECT st.rank, st.member_id, m.name, st.score, st.reached_at, st.prize, coalesce(st.prize_txn, 0)
		FROM season_standings st JOIN members m ON m.id = st.member_id
		WHERE st.season_id = $1 ORDER BY st.rank LIMIT $2`, seasonID, limit)
	if err != nil {
		return nil, fmt.Errorf("read standings: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Standing, error) {
		var st Standing
		return st, r.Scan(&st.Rank, &st.Member, &st.Name, &st.Score, &st.ReachedAt, &st.Prize, &st.PrizeTxn)
	})
	if err != nil {
		return nil, fmt.Errorf("read standings: %w", err)
	}
	return out, nil
}

// Due returns the seasons whose end has passed and are not closed, and those
// a crashed close left closing.
func (s *Service) DueSeasons(ctx context.Context) ([]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM seasons
		WHERE (status = 'open' AND ends_at <= $1) OR status = 'closing' ORDER BY number`, s.now())
	if err != nil {
		return nil, fmt.Errorf("read due seasons: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("read due seasons: %w", err)
	}
	return ids, nil
}

// Board is a season's leaderboard: its first places and, when asked, one
// member's own place.
type Board struct {
	Season  Season
	Entries []Standing
	Own     *Standing // nil when not asked or not on the board
}

// MaxBoard is the most places one leaderboard read returns.
const MaxBoard = 100

// Leaderboard returns the first limit places of a season (live for the open
// one, final for a closed one) and member's place when member is not 0.
func (s *Service) Leaderboard(ctx context.Context, season Season, limit int, member int64) (Board, error) {
	if limit < 1 || limit > MaxBoard {
		return Board{}, tally.Errorf(tally.EINVALID, "limit must be from 1 to %d", MaxBoard)
	}
	b := Board{Season: season}
	var err error
	if season.Status == SeasonOpen {
		if b.Entries, b.Own, err = s.ranks.Board(ctx, season.ID, limit, member); err != nil {
			return Board{}, err
		}
	} else {
		if b.Entries, err = s.FinalStandings(ctx, season.ID, limit); err != nil {
			return Board{}, err
		}
		if member != 0 {
			st := Standing{Member: member}
			err := s.pool.QueryRow(ctx, "SELECT rank, score, reached_at, prize FROM season_standings WHERE season_id = $1 AND member_id = $2",
				season.ID, member).Scan(&st.Rank, &st.Score, &st.ReachedAt, &st.Prize)
			if err == nil {
				b.Own = &st
			} else if !errors.Is(err, pgx.ErrNoRows) {
				return Board{}, fmt.Errorf("read standing: %w", err)
			}
		}
	}
	return b, nil
}

// MergeScores moves what /link joined into member onto it: the open season's
// scores of the merged-away accounts (added up; the later time counts for
// ties) and their season membership. Running it again changes nothing; a
// close and the reconciler merge whatever a crash left unmerged.
func (s *Service) MergeScores(ctx context.Context, member int64) error {
	if s.prog.Seasons == nil {
		return nil
	}
	season, err := s.CurrentSeason(ctx)
	if err != nil {
		return err
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		// The member's row orders this with their awards.
		if _, err := tx.Exec(ctx, "SELECT 1 FROM members WHERE id = $1 FOR UPDATE", member); err != nil {
			return err
		}
		return mergeScores(ctx, tx, season.ID, season.AutoJoin, member)
	})
}

// mergeAllScores merges every account /link joined into another.
func mergeAllScores(ctx context.Context, tx pgx.Tx, season int64, auto bool) error {
	return mergeScores(ctx, tx, season, auto, 0)
}

// mergeScores moves the season membership and season scores of accounts
// merged into survivor (into any member when survivor is 0) onto the member
// they were merged into.
func mergeScores(ctx context.Context, tx pgx.Tx, season int64, auto bool, survivor int64) error {
	if _, err := tx.Exec(ctx, `WITH gone AS (
			DELETE FROM season_members sm USING members m
			WHERE m.id = sm.member_id AND m.merged_into IS NOT NULL AND ($1 = 0 OR m.merged_into = $1)
			RETURNING m.merged_into AS keep, sm.joined_at)
		INSERT INTO season_members (member_id, joined_at) SELECT keep, min(joined_at) FROM gone GROUP BY keep ORDER BY keep
		ON CONFLICT DO NOTHING`, survivor); err != nil {
		return fmt.Errorf("merge season membership: %w", err)
	}
	_, err := tx.Exec(ctx, `WITH old AS (
			SELECT s.member_id, m.merged_into AS keep, s.score, s.reached_at FROM season_scores s
			JOIN members m ON m.id = s.member_id
			WHERE s.season_id = $2 AND m.merged_into IS NOT NULL AND ($1 = 0 OR m.merged_into = $1) AND (s.score > 0 OR s.joined)
			FOR UPDATE OF s),
		cleared AS (
			UPDATE season_scores s SET score = 0, joined = false, xid = pg_current_xact_id(), rev = s.rev + 1
			FROM old WHERE s.season_id = $2 AND s.member_id = old.member_id)
		INSERT INTO season_scores AS sc (season_id, member_id, score, reached_at, joined)
		SELECT $2, keep, sum(score), max(reached_at), $3 OR EXISTS (SELECT 1 FROM season_members WHERE member_id = keep)
		FROM old GROUP BY keep ORDER BY keep
		ON CONFLICT (season_id, member_id) DO UPDATE SET score = sc.score + excluded.score,
			reached_at = greatest(sc.reached_at, excluded.reached_at), joined = sc.joined OR excluded.joined,
			xid = pg_current_xact_id(), rev = sc.rev + 1`, survivor, season, auto)
	if err != nil {
		return fmt.Errorf("merge season scores: %w", err)
	}
	return nil
}

// MergeAllScores merges, in the open season, every account /link joined into
// another whose merge a crash interrupted (the reconciler calls it).
func (s *Service) MergeAllScores(ctx context.Context) error {
	if s.prog.Seasons == nil {
		return nil
	}
	season, err := s.CurrentSeason(ctx)
	if err != nil {
		return err
	}
	return s.inTx(ctx, func(tx pgx.Tx) error { return mergeAllScores(ctx, tx, season.ID, season.AutoJoin) })
}
