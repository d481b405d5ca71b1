package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/tasks"
)

// SeasonService is what the admin API needs of seasons.
type SeasonService interface {
	CurrentSeason(ctx context.Context) (tasks.Season, error)
	GetSeason(ctx context.Context, id int64) (tasks.Season, error)
	Seasons(ctx context.Context) ([]tasks.Season, error)
	Close(ctx context.Context, id int64, manual bool) (tasks.CloseResult, error)
	Leaderboard(ctx context.Context, season tasks.Season, limit int, member int64) (tasks.Board, error)
	FinalStandings(ctx context.Context, season int64, limit int) ([]tasks.Standing, error)
}

// WithSeasons serves the leaderboard and season calls from svc.
func WithSeasons(svc SeasonService) Option { return func(s *Server) { s.seasons = svc } }

type seasonJSON struct {
	ID        int64          `json:"id"`
	Number    int64          `json:"number"`
	StartsAt  time.Time      `json:"starts_at"`
	EndsAt    *time.Time     `json:"ends_at"`
	Status    string         `json:"status"`
	Join      string         `json:"join"`
	Prizes    []int64        `json:"prizes"`
	ClosedAt  *time.Time     `json:"closed_at"`
	Standings []standingJSON `json:"standings,omitempty"`
}

type standingJSON struct {
	Rank          int64      `json:"rank"`
	Member        memberJSON `json:"member"`
	Name          string     `json:"name"`
	Score         int64      `json:"score"`
	Prize         *int64     `json:"prize,omitempty"`
	TransactionID int64      `json:"prize_transaction_id,omitempty"`
}

func toSeasonJSON(s tasks.Season) seasonJSON {
	join := "opt_in"
	if s.AutoJoin {
		join = "auto"
	}
	prizes := s.Prizes
	if prizes == nil {
		prizes = []int64{}
	}
	out := seasonJSON{ID: s.ID, Number: s.Number, StartsAt: s.StartsAt.UTC(), Status: s.Status, Join: join, Prizes: prizes}
	if s.EndsAt != nil {
		t := s.EndsAt.UTC()
		out.EndsAt = &t
	}
	if s.ClosedAt != nil {
		t := s.ClosedAt.UTC()
		out.ClosedAt = &t
	}
	return out
}

// standings renders places with their members; final places show prizes.
func (s *Server) standings(ctx context.Context, places []tasks.Standing, final bool) ([]standingJSON, error) {
	ids := make([]int64, len(places))
	for i, p := range places {
		ids[i] = p.Member
	}
	members, err := s.ledger.Describe(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]standingJSON, len(places))
	for i, p := range places {
		m := toMemberJSON(p.Member, members[p.Member])
		out[i] = standingJSON{Rank: p.Rank, Member: m, Name: m.Name, Score: p.Score}
		if final {
			prize := p.Prize
			out[i].Prize, out[i].TransactionID = &prize, p.PrizeTxn
		}
	}
	return out, nil
}

func (s *Server) seasonsOn() error {
	if s.seasons == nil {
		return tally.Errorf(tally.ENOTFOUND, "seasons are not enabled: add a [seasons] section to the programme file")
	}
	return nil
}

// seasonParam reads a season given as "current" or an id.
func (s *Server) seasonParam(ctx context.Context, v string) (tasks.Season, error) {
	if v == "" || v == "current" {
		return s.seasons.CurrentSeason(ctx)
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 1 {
		return tasks.Season{}, tally.Errorf(tally.EINVALID, "season must be \"current\" or a season id")
	}
	return s.seasons.GetSeason(ctx, id)
}

const defaultBoard = 10

func (s *Server) leaderboard(w http.ResponseWriter, r *http.Request) error {
	if err := s.seasonsOn(); err != nil {
		return err
	}
	q := r.URL.Query()
	season, err := s.seasonParam(r.Context(), q.Get("season"))
	if err != nil {
		return err
	}
	limit, err := limitParam(q, defaultBoard, tasks.MaxBoard)
	if err != nil {
		return err
	}
	var member int64
	if v := q.Get("member"); v != "" {
		ref, err := ledger.ParseMemberRef(v)
		if err != nil {
			return err
		}
		if member, err = s.ledger.Resolve(r.Context(), ref); err != nil {
			return err
		}
	}
	board, err := s.seasons.Leaderboard(r.Context(), season, limit, member)
	if err != nil {
		return err
	}
	places := board.Entries
	if board.Own != nil {
		places = append(places[:len(places):len(places)], *board.Own)
	}
	entries, err := s.standings(r.Context(), places, false)
	if err != nil {
		return err
	}
	body := map[string]any{"season": toSeasonJSON(season), "entries": entries[:len(board.Entries)]}
	if board.Own != nil {
		body["member_rank"] = entries[len(entries)-1]
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

// standingsShown is how many final places a season listing carries.
const standingsShown = 10

func (s *Server) seasonList(w http.ResponseWriter, r *http.Request) error {
	if err := s.seasonsOn(); err != nil {
		return err
	}
	seasons, err := s.seasons.Seasons(r.Context())
	if err != nil {
		return err
	}
	out := make([]seasonJSON, len(seasons))
	for i, season := range seasons {
		out[i] = toSeasonJSON(season)
		if season.Status == tasks.SeasonOpen {
			continue
		}
		places, err := s.seasons.FinalStandings(r.Context(), season.ID, standingsShown)
		if err != nil {
			return err
		}
		if out[i].Standings, err = s.standings(r.Context(), places, true); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"seasons": out})
	return nil
}

func (s *Server) currentSeason(w http.ResponseWriter, r *http.Request) error {
	if err := s.seasonsOn(); err != nil {
		return err
	}
	season, err := s.seasons.CurrentSeason(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toSeasonJSON(season))
	return nil
}

// closeSeason ends a season now: 200 with its final standings and the next
// season; closing it again answers the original result with
// Idempotent-Replayed: true.
func (s *Server) closeSeason(w http.ResponseWriter, r *http.Request) error {
	if err := s.seasonsOn(); err != nil {
		return err
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return tally.Errorf(tally.EINVALID, "season id must be a positive whole number")
	}
	res, err := s.seasons.Close(r.Context(), id, true)
	outcome := "ok"
	switch {
	case err != nil:
		outcome = tally.ErrorCode(err)
	case res.Replayed:
		outcome = "replayed"
	}
	s.record(r.Context(), tasks.AuditEntry{ActorKind: "admin", Action: "close_season", TargetRef: "season:" + strconv.FormatInt(id, 10), Outcome: outcome})
	if err != nil {
		return err
	}
	standings, err := s.standings(r.Context(), res.Standings, true)
	if err != nil {
		return err
	}
	closed := toSeasonJSON(res.Season)
	closed.Standings = standings
	if res.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, http.StatusOK, map[string]any{"season": closed, "next": toSeasonJSON(res.Next)})
	return nil
}
